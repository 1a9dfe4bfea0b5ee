"""wav.scp entries as LDC and other Kaldi recipes write them (their exact forms, from kaldi-asr/kaldi
egs/*/local/*_data_prep.sh): a pipe of a known form is its file and channel, never run; any other
pipe is an ``UnreadPipe`` naming its command."""

from __future__ import annotations

import pytest

from etl.ingest.wav_scp import ScpFile, UnreadPipe, parse_entry

SPH2PIPE = "/opt/kaldi/tools/sph2pipe_v2.5/sph2pipe"


@pytest.mark.parametrize(
    "target, found",
    [
        ("/c/a.wav", ScpFile("/c/a.wav")),
        # swbd, fisher, callhome: one entry per side
        (
            f"{SPH2PIPE} -f wav -p -c 1 /LDC97S62/swb1/sw02001.sph |",
            ScpFile("/LDC97S62/swb1/sw02001.sph", 1),
        ),
        (
            f"{SPH2PIPE} -f wav -p -c 2 /LDC97S62/swb1/sw02001.sph |",
            ScpFile("/LDC97S62/swb1/sw02001.sph", 2),
        ),
        # wsj, rm: the whole file
        (
            f"{SPH2PIPE} -f wav /wsj0/si_tr_s/011/011c0201.wv1 |",
            ScpFile("/wsj0/si_tr_s/011/011c0201.wv1"),
        ),
        # tedlium
        (
            "sph2pipe -f wav -p /db/TEDLIUM_release2/train/sph/AlGore_2009.sph |",
            ScpFile("/db/TEDLIUM_release2/train/sph/AlGore_2009.sph"),
        ),
        ("sph2pipe -f rif X.sph|", ScpFile("X.sph")),
        # librispeech, and sox's other spellings
        (
            "sox /LibriSpeech/19/198/19-198-0001.flac -t wav - |",
            ScpFile("/LibriSpeech/19/198/19-198-0001.flac"),
        ),
        ("sox a.sph -t wav -r 16000 -c 1 - |", ScpFile("a.sph")),
        ("sox -t sph 'with space.sph' -t wav - remix 2 |", ScpFile("with space.sph", 2)),
        ("sox a.wav -t wav - rate 16k remix - |", ScpFile("a.wav")),
        ("ffmpeg -i /x/a.mp3 -f wav -ar 16000 -ac 1 - |", ScpFile("/x/a.mp3")),
        (
            "ffmpeg -hide_banner -loglevel error -i a.m4a -map_channel 0.0.1 -f wav pipe:1 |",
            ScpFile("a.m4a", 2),
        ),
        ("cat /x/a.wav |", ScpFile("/x/a.wav")),
    ],
)
def test_a_known_pipe_is_the_file_and_channel_it_names(target, found):
    assert parse_entry(target) == found


@pytest.mark.parametrize(
    "target",
    [
        f"{SPH2PIPE} -f wav -p -c 1 -t 0:60 a.sph |",  # a time range
        f"{SPH2PIPE} -f wav a.sph out.wav |",  # an output file: nothing on stdout
        "sox -B -r 16k -e signed -b 16 -c 1 -t raw a.raw -t wav - |",  # raw PCM, no header
        "sox a.wav -t wav - trim 0 10 |",  # another effect
        "sox a.wav b.wav -t wav - |",  # two inputs
        "ffmpeg -i a.mp3 -ss 3 -f wav - |",
        "ffmpeg -i a.mp3 -af volume=2 -f wav - |",
        "sph2pipe -f wav a.sph | sox -t wav - -t wav - rate 8k |",  # a second pipe
        "wav-reverberate --shift-output=true a.wav - |",
        "cat a.wav b.wav |",
        "sox 'unclosed.wav -t wav - |",
        "|",
    ],
)
def test_any_other_pipe_is_unread_naming_its_command(target):
    got = parse_entry(target)
    assert got == UnreadPipe(target.strip())
    assert target.strip()[:40] in got.detail and "never runs commands" in got.detail
