"""The demo study: pydicom's bundled files, scanned into stacks that all decode."""

from __future__ import annotations

import numpy as np

from viewer.imaging.loader import SeriesLoader
from viewer.imaging.stack import build_stacks
from viewer.media.demo import DEMO_FILES, demo_paths
from viewer.media.scan import scan


def test_demo_paths_exist_and_are_the_chosen_files() -> None:
    paths = demo_paths()
    assert [p.name for p in paths] == list(DEMO_FILES)
    assert all(p.is_file() for p in paths)


def test_demo_scans_into_stacks_that_decode() -> None:
    instances, series, problems = [], [], []
    for path in demo_paths():
        result = scan(path)
        instances += result.instances
        series += result.series()
        problems += result.problems
    assert not problems
    stacks = build_stacks(instances, series=series)
    assert len(stacks) == len(DEMO_FILES)
    modalities = sorted(s.modality for s in stacks)
    assert modalities == ["CT", "MR", "MR", "US", "US"]
    shapes = {}
    for stack in stacks:
        with SeriesLoader(stack) as load:
            load.start()
            assert load.wait(60)
            assert not load.problems, load.problems
            frames = [load.frame(i) for i in range(len(stack))]
            assert all(f is not None and f.size > 0 for f in frames)
            assert np.ptp(frames[0]) > 0  # an image, not a blank
            shapes[stack.frames[0].path.name] = (len(stack), frames[0].shape)  # type: ignore[union-attr]
    assert shapes["examples_ybr_color.dcm"] == (30, (240, 320, 3))  # multi-frame colour cine
    assert shapes["CT_small.dcm"] == (1, (128, 128))
    assert shapes["examples_palette.dcm"][1] == (350, 800)  # palette: stored indices, 2-D
