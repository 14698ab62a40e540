"""The benches' worker layouts: processes x threads, or a thread pool of tasks, and the tasks
held in reserve."""

from __future__ import annotations

from bench.layouts import Layout


def test_layouts_parse_processes_threads_and_thread_pools() -> None:
    layouts = Layout.parse_list("2x1, 1x2,4tx1,2x1r0,")
    assert layouts == [
        Layout(2, 1),
        Layout(1, 2),
        Layout(4, 1, "threads"),
        Layout(2, 1, read_ahead=0),
    ]
    assert [str(layout) for layout in layouts] == ["2x1", "1x2", "4tx1", "2x1r0"]
    assert layouts[0].env() == {"FACETRAIL_THREADS": "1"}
    assert layouts[3].env() == {"FACETRAIL_THREADS": "1", "FACETRAIL_READ_AHEAD": "0"}
