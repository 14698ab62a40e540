"""Scans: what a user names becomes job sources, each entry once, URLs intact."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facetrail.errors import InvalidParameterError
from facetrail.images import open_image
from facetrail.images.scan import EnrollEntry, enroll_entries, enroll_sources, expand_sources
from facetrail.settings import Settings
from tests.badinputs import OBAMA, PNG_32BIT


def test_urls_and_other_schemes_are_kept_intact(tmp_path: Path) -> None:
    named = [
        "https://example.com/photos/a.jpg?size=large",
        "http://example.com//double//slash.png",
        "upload://" + "a" * 64,
        "file:///srv/photos/b.jpg",
    ]
    assert expand_sources(named, settings=Settings(home=tmp_path)) == named


def test_txt_and_csv_lists(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("# photos\nhttps://example.com/a.jpg\n\n  local.jpg  \n", encoding="utf-8")
    table = tmp_path / "table.csv"
    table.write_text("id,url\n1,https://example.com/b.jpg\n2,\n3,c.jpg\n", encoding="utf-8")
    settings = Settings(home=tmp_path)
    assert expand_sources([listing, str(table)], settings=settings, column="url") == [
        "https://example.com/a.jpg",
        "local.jpg",
        "https://example.com/b.jpg",
        "c.jpg",
    ]
    with pytest.raises(InvalidParameterError, match="--column"):
        expand_sources([table], settings=settings)
    with pytest.raises(InvalidParameterError, match="no column 'image'"):
        expand_sources([table], settings=settings, column="image")


def test_lists_with_names_that_are_not_utf8(tmp_path: Path) -> None:
    """A list naming a file whose name is not valid UTF-8 gives a source, not a crash."""
    odd = tmp_path / os.fsdecode(b"caf\xe9.jpg")
    odd.write_bytes(OBAMA.read_bytes())
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"%s\nhttps://example.com/caf\xe9.jpg\n" % os.fsencode(odd))
    table = tmp_path / "table.csv"
    table.write_bytes(b"img\n%s\n" % os.fsencode(odd))
    settings = Settings(home=tmp_path)
    found = expand_sources([listing, table], settings=settings, column="img")
    assert found == [odd.as_uri(), "https://example.com/caf%E9.jpg", odd.as_uri()]
    for source in found:
        source.encode("utf-8")  # storable text
    assert open_image(settings, found[0]).width > 0


def _awkward_folder(root: Path) -> dict[str, Path]:
    """A folder holding every kind of entry a scan meets."""
    (root / "sub").mkdir(parents=True)
    made = {
        "photo": root / "a.jpg",
        "nested": root / "sub" / "b.PNG",
        "fifo": root / "pipe.jpg",
        "dangling": root / "dangling.jpg",
        "dir_named_jpg": root / "album.jpg",
        "odd_name": root / os.fsdecode(b"caf\xe9.jpg"),
    }
    made["photo"].write_bytes(OBAMA.read_bytes())
    made["nested"].write_bytes(PNG_32BIT.read_bytes())
    os.mkfifo(made["fifo"])
    made["dangling"].symlink_to(root / "nowhere.jpg")
    made["dir_named_jpg"].mkdir()
    made["odd_name"].write_bytes(OBAMA.read_bytes())
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.jpg").write_bytes(b"")
    (root / "loop").symlink_to(root)  # a symlinked folder pointing back: walked once
    return made


def test_every_image_named_entry_of_a_folder_is_a_source(tmp_path: Path) -> None:
    made = _awkward_folder(tmp_path / "photos")
    settings = Settings(home=tmp_path)
    sources = expand_sources([tmp_path / "photos"], settings=settings)
    expected = {str(p) for key, p in made.items() if key != "odd_name"}
    expected.add(made["odd_name"].as_uri())  # not valid UTF-8: a %XX-escaped file:// URI
    assert set(sources) == expected and len(sources) == len(expected)
    for source in sources:
        source.encode("utf-8")  # every source can be stored as text
    assert open_image(settings, made["odd_name"].as_uri()).data == OBAMA.read_bytes()


def test_named_files_are_taken_as_given(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    named = [str(tmp_path / "missing.jpg"), str(tmp_path / "x.gif")]
    assert expand_sources(named, settings=settings) == named


def test_upload_puts_local_files_in_the_store(tmp_path: Path) -> None:
    made = _awkward_folder(tmp_path / "photos")
    settings = Settings(home=tmp_path / "home")
    sources = expand_sources(
        [tmp_path / "photos", "https://example.com/a.jpg"], settings=settings, upload=True
    )
    uploads = [s for s in sources if s.startswith("upload://")]
    # a.jpg and the odd name hold the same bytes: one object, two sources.
    assert len(uploads) == 3 and len(set(uploads)) == 2
    assert sources[-1] == "https://example.com/a.jpg"
    # What cannot be read stays as named and fails as its own item where it is opened.
    for key in ("fifo", "dangling", "dir_named_jpg"):
        assert str(made[key]) in sources
    for source in uploads:
        assert open_image(settings, source).width > 0


def test_enroll_entries_by_folder_and_file_name(tmp_path: Path) -> None:
    root = tmp_path / "people"
    (root / "Ada Lovelace").mkdir(parents=True)
    (root / "Ada Lovelace" / "one.jpg").write_bytes(OBAMA.read_bytes())
    (root / "Ada Lovelace" / "broken.jpg").symlink_to(root / "nowhere.jpg")
    (root / "grace_2.jpg").write_bytes(OBAMA.read_bytes())
    odd = root / os.fsdecode(b"jos\xe9")
    odd.mkdir()
    (odd / "x.jpg").write_bytes(OBAMA.read_bytes())
    entries = enroll_entries(root)
    assert entries[:3] == [
        EnrollEntry(str(root / "Ada Lovelace" / "broken.jpg"), "Ada Lovelace"),
        EnrollEntry(str(root / "Ada Lovelace" / "one.jpg"), "Ada Lovelace"),
        EnrollEntry(str(root / "grace_2.jpg"), "grace"),
    ]
    assert entries[3] == EnrollEntry((odd / "x.jpg").as_uri(), "jos\ufffd")
    with pytest.raises(InvalidParameterError, match="no such file"):
        enroll_entries(tmp_path / "nobody")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidParameterError, match="no images"):
        enroll_entries(tmp_path / "empty")


def test_enroll_sources_take_a_url_or_key_as_one_image(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    (tmp_path / "ada_1.jpg").write_bytes(OBAMA.read_bytes())
    named = [
        str(tmp_path / "ada_1.jpg"),
        "https://example.com/people/grace_2.jpg?size=large",
        "http://example.com/Alan%20Turing.png",
        "s3://bucket/people/ken_3.jpeg",  # an image key is not listed
    ]
    assert enroll_sources(named, settings=settings) == [
        EnrollEntry(named[0], "ada"),
        EnrollEntry(named[1], "grace"),
        EnrollEntry(named[2], "Alan Turing"),
        EnrollEntry(named[3], "ken"),
    ]
    assert {e.external_id for e in enroll_sources(named, settings=settings, person="x")} == {"x"}
