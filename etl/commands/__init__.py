"""The commands, orchestration only: ``build`` (plan -> shards -> ``finalize``), ``plan`` (the dry
run) and ``sample`` (a review sample). The algorithms they drive live in the stage folders."""
