"""Planning on the cluster: the alignment table -> placed rows, without the table on the client.
``worker``: what runs on one partition (pure pandas); ``client``: the passes that drive it and combine
their small results; ``store``: the placed rows as the workers write them under OUT/.parts/plan/."""
