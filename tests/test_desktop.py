"""Desktop integration (issue 12): the desktop entry, AppStream metainfo, MIME package and icons
that ``viewer/resources`` ships, checked with the freedesktop.org tools, and
``lightbox desktop install|uninstall`` (viewer/desktop.py) run into temporary XDG folders, then
asked of the real shared-mime database, GIO and xdg-mime.

The tools come from packaging/system-deps.sh (desktop-file-utils, appstream, shared-mime-info,
xdg-utils, libglib2.0-bin); outside CI a missing one skips its test, in CI it fails.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from tests.cli import lightbox
from tests.conftest import ROOT, missing, require_tool
from viewer import __version__, desktop, resources

RESOURCES = ROOT / "viewer" / "resources"
APP_ID = resources.APP_ID
AS = "{http://www.freedesktop.org/standards/shared-mime-info}"


def entry_of(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def validate_desktop_file(path: Path) -> None:
    """desktop-file-validate says nothing: no error, no warning, no hint."""
    tool = require_tool("desktop-file-validate")
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


# -- the packaged files --------------------------------------------------------------------------


def test_the_packaged_files_are_named_after_the_application_id() -> None:
    assert re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){2,}", APP_ID)
    for name in (resources.DESKTOP_ENTRY, resources.METAINFO, resources.MIME_PACKAGE):
        assert name.startswith(f"{APP_ID}.") and (RESOURCES / name).is_file()


def test_the_desktop_entry_is_valid() -> None:
    validate_desktop_file(RESOURCES / resources.DESKTOP_ENTRY)


def test_the_desktop_entry_opens_files_media_and_folders_with_lightbox() -> None:
    entry = entry_of(RESOURCES / resources.DESKTOP_ENTRY)
    assert entry["Type"] == "Application" and entry["Name"] == "Lightbox"
    # "open": a file named like a subcommand is still a file; %F: several files at once
    assert entry["Exec"] == "lightbox open %F" and entry["TryExec"] == "lightbox"
    assert entry["Icon"] == APP_ID
    mime_types = entry["MimeType"].split(";")
    assert {desktop.DICOM, desktop.DICOM_MEDIA, desktop.FOLDER} <= set(mime_types)
    assert "MedicalSoftware" in entry["Categories"].split(";")
    assert entry["Keywords"].endswith(";") and "DICOM" in entry["Keywords"].split(";")


def test_the_window_class_and_app_id_match_the_qt_application() -> None:
    """X11 matches windows to the entry by WM_CLASS, whose class is Qt's application name;
    Wayland by the app id, Qt's desktop file name (viewer/qt/app.py)."""
    entry = entry_of(RESOURCES / resources.DESKTOP_ENTRY)
    source = (ROOT / "viewer" / "qt" / "app.py").read_text(encoding="utf-8")
    name = re.search(r"setApplicationName\((.+?)\)", source)
    assert name and name.group(1) == f'"{entry["StartupWMClass"]}"'
    file_name = re.search(r"setDesktopFileName\((.+?)\)", source)
    assert file_name and file_name.group(1) in ("resources.APP_ID", f'"{APP_ID}"'), (
        f"viewer/qt/app.py should call app.setDesktopFileName(resources.APP_ID), not "
        f"{file_name.group(1) if file_name else 'nothing'}"
    )


def test_the_metainfo_is_valid() -> None:
    tool = require_tool("appstreamcli")
    path = RESOURCES / resources.METAINFO
    result = subprocess.run(
        [tool, "validate", "--no-net", "--pedantic", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"^\s*[EW]:", result.stdout, re.MULTILINE), result.stdout


def test_the_metainfo_describes_this_lightbox() -> None:
    root = ET.parse(RESOURCES / resources.METAINFO).getroot()
    assert root.get("type") == "desktop-application"
    assert root.findtext("id") == APP_ID
    assert root.findtext("launchable") == f"{APP_ID}.desktop"
    assert root.findtext("metadata_license") == "CC0-1.0"
    assert root.findtext("project_license") == "GPL-3.0-or-later"
    assert root.findtext("provides/binary") == "lightbox"
    assert root.findtext("provides/mediatype") == desktop.DICOM
    releases = root.findall("releases/release")
    assert releases and releases[0].get("version") == __version__
    images = [image.text or "" for image in root.iter("image")]
    assert images and all(i.startswith("https://") for i in images)
    for image in images:  # the screenshots named are the repository's own
        assert (ROOT / "docs" / image.rsplit("/", 1)[1]).is_file(), image


def test_the_mime_package_defines_dicom_files_and_media() -> None:
    root = ET.parse(RESOURCES / resources.MIME_PACKAGE).getroot()
    types = {t.get("type"): t for t in root.iter(f"{AS}mime-type")}
    dicom = types[desktop.DICOM]
    globs = {g.get("pattern") for g in dicom.iter(f"{AS}glob")}
    assert globs == {"DICOMDIR", "*.dcm"}
    match = dicom.find(f"{AS}magic/{AS}match")
    assert match is not None
    assert match.attrib == {"type": "string", "value": "DICM", "offset": "128"}
    paths = {m.get("path") for m in types[desktop.DICOM_MEDIA].iter(f"{AS}treematch")}
    assert paths == {"DICOMDIR", "DICOMDIR;1"}


# -- icons --------------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_each_icon_png_is_as_large_as_its_folder_says() -> None:
    folders = sorted(p.name for p in (RESOURCES / "icons").iterdir() if p.is_dir())
    assert sorted(f"{n}x{n}" for n in resources.ICON_SIZES) == folders
    for size, name in zip(resources.ICON_SIZES, resources.ICON_PNGS, strict=True):
        path = RESOURCES / name
        assert path.parent.name == f"{size}x{size}"
        assert png_size(path) == (size, size)


def test_the_icon_pngs_are_fresh_renders_of_the_svg() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "make_icons.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(resources.ICON_SIZES)} PNGs match" in result.stdout


def test_the_icon_check_sees_a_changed_drawing(tmp_path: Path) -> None:
    changed = tmp_path / "changed.svg"
    svg = (RESOURCES / resources.ICON).read_text(encoding="utf-8")
    changed.write_text(svg.replace("#10161e", "#ff0000"), encoding="utf-8")
    probe = (
        "import sys; sys.argv = ['x']; sys.path.insert(0, 'packaging'); import make_icons as m\n"
        "app = m.QGuiApplication([])\n"
        f"a = m.render(m.RESOURCES / {resources.ICON!r}, 16)\n"
        f"b = m.render(m.Path({str(changed)!r}), 16)\n"
        "print(m.difference(a, a), m.difference(a, b) > m.TOLERANCE)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "True"]


# -- the Exec line ------------------------------------------------------------------------------


def test_exec_arguments_are_quoted_as_the_specification_says() -> None:
    assert desktop.exec_argument("/usr/bin/lightbox") == "/usr/bin/lightbox"
    assert desktop.exec_argument("/opt/my apps/lightbox") == '"/opt/my apps/lightbox"'
    assert desktop.exec_argument('/o/a"$`\\b') == '"/o/a\\"\\$\\`\\\\b"'
    assert desktop.exec_argument("/o/100%") == "/o/100%%"


def test_an_entry_for_a_program_in_an_awkward_folder_is_valid(tmp_path: Path) -> None:
    program = "/opt/Light box $1/dist/lightbox/lightbox"
    path = tmp_path / f"{APP_ID}.desktop"
    path.write_text(desktop.desktop_entry([program]), encoding="utf-8")
    validate_desktop_file(path)
    entry = entry_of(path)
    assert entry["TryExec"] == program
    assert entry["Exec"] == '"/opt/Light box \\\\$1/dist/lightbox/lightbox" open %F'


def test_the_launcher_is_the_bundle_when_frozen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "dist" / "lightbox"
    bundle.mkdir(parents=True)
    program = bundle / "lightbox"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(program))
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert desktop.launcher() == [str(program)]
    monkeypatch.setenv("PATH", str(bundle))
    assert desktop.launcher() == ["lightbox"]


def test_the_launcher_without_a_lightbox_script_is_this_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = tmp_path / "bin" / "python3"
    python.parent.mkdir()
    python.write_text("")
    monkeypatch.setattr(sys, "executable", str(python))
    monkeypatch.setattr(sys, "argv", ["-c"])
    assert desktop.launcher() == [str(python), "-m", "viewer"]
    script = python.parent / "lightbox"
    script.write_text("")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert desktop.launcher() == [str(script)]


# -- install and uninstall ----------------------------------------------------------------------


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Temporary XDG folders, a generic desktop (xdg-mime reads mimeapps.list itself), and a
    system folder whose only application, a file manager, opens folders without being anyone's
    declared default (as on a desktop that ships no mimeapps.list)."""
    folders = {
        name: tmp_path / name for name in ("home", "data", "config", "system", "media", "empty")
    }
    for folder in folders.values():
        folder.mkdir()
    applications = folders["system"] / "applications"
    applications.mkdir()
    (applications / "files.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Files\nExec=true %U\nMimeType=inode/directory;\n",
        encoding="utf-8",
    )
    tool = shutil.which("update-desktop-database")
    if tool:
        subprocess.run([tool, "-q", str(applications)], check=True, timeout=60)
    monkeypatch.setenv("HOME", str(folders["home"]))
    monkeypatch.setenv("XDG_DATA_HOME", str(folders["data"]))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folders["config"]))
    monkeypatch.setenv("XDG_DATA_DIRS", str(folders["system"]))
    for name in (
        "XDG_CURRENT_DESKTOP",
        "XDG_MENU_PREFIX",
        "DESKTOP_SESSION",
        "KDE_FULL_SESSION",
        "KDE_SESSION_VERSION",
        "GNOME_DESKTOP_SESSION_ID",
        "MATE_DESKTOP_SESSION_ID",
        "DISPLAY",
        "WAYLAND_DISPLAY",
    ):
        monkeypatch.delenv(name, raising=False)
    return folders


def xdg_mime_default(mime_type: str) -> str:
    tool = require_tool("xdg-mime")
    result = subprocess.run(
        [tool, "query", "default", mime_type], capture_output=True, text=True, timeout=60
    )
    return result.stdout.strip()


def content_type(path: Path, data_dirs: Path) -> str:
    """GIO's content type of ``path`` with only the user's database (``data_dirs`` is empty)."""
    tool = require_tool("gio")
    env = {**os.environ, "XDG_DATA_DIRS": str(data_dirs)}
    result = subprocess.run(
        [tool, "info", "-a", "standard::content-type", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    found = re.search(r"standard::content-type: (\S+)", result.stdout)
    assert found, result.stdout
    return found.group(1)


GUESS_FOR_TREE = r"""
import ctypes, sys
gio = ctypes.CDLL("libgio-2.0.so.0")
gio.g_file_new_for_path.restype = ctypes.c_void_p
gio.g_file_new_for_path.argtypes = [ctypes.c_char_p]
gio.g_content_type_guess_for_tree.restype = ctypes.POINTER(ctypes.c_char_p)
gio.g_content_type_guess_for_tree.argtypes = [ctypes.c_void_p]
types = gio.g_content_type_guess_for_tree(gio.g_file_new_for_path(sys.argv[1].encode()))
i = 0
while types[i]:
    print(types[i].decode())
    i += 1
"""


def media_types(root: Path, data_dirs: Path) -> list[str]:
    """What GIO guesses for a mounted medium at ``root`` (the file manager's question), with
    only the user's database."""
    env = {**os.environ, "XDG_DATA_DIRS": str(data_dirs)}
    result = subprocess.run(
        [sys.executable, "-c", GUESS_FOR_TREE, str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    if result.returncode != 0 and "libgio" in result.stderr:
        missing("libgio-2.0.so.0 cannot be loaded (libglib2.0-0)")
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_install_then_uninstall_in_the_users_folders(xdg: dict[str, Path]) -> None:
    for tool in ("update-desktop-database", "update-mime-database", "xdg-mime"):
        require_tool(tool)
    data = xdg["data"]
    assert xdg_mime_default(desktop.FOLDER) == "files.desktop"

    notes: list[str] = []
    written = desktop.install(notes=notes)

    # the files, where the desktops look for them
    assert sorted(written) == sorted(desktop.files(data))
    assert all(path.is_file() for path in written)
    installed = data / "applications" / f"{APP_ID}.desktop"
    validate_desktop_file(installed)
    assert installed.read_text(encoding="utf-8") == desktop.desktop_entry(desktop.launcher())
    for size in resources.ICON_SIZES:
        icon = data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        assert png_size(icon) == (size, size)
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg").is_file()
    assert not (data / "icons" / "hicolor" / "icon-theme.cache").exists()  # a user's folder

    # AppStream sees the metainfo with its desktop entry (validate-tree wants ROOT/usr/share)
    appstreamcli = shutil.which("appstreamcli")
    if appstreamcli is None:
        missing("appstreamcli is not installed")
    else:
        tree = xdg["home"] / "tree"
        (tree / "usr").mkdir(parents=True)
        (tree / "usr" / "share").symlink_to(data)
        result = subprocess.run(
            [appstreamcli, "validate-tree", "--no-net", str(tree)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "desktop-file-not-found" not in result.stdout

    # update-mime-database took the package: DICOMDIR and *.dcm, and the media's tree magic
    mime = data / "mime"
    globs = (mime / "globs2").read_text(encoding="utf-8").splitlines()
    assert "50:application/dicom:dicomdir" in globs and "50:application/dicom:*.dcm" in globs
    treemagic = (mime / "treemagic").read_bytes().decode("ascii").splitlines()
    assert f"[50:{desktop.DICOM_MEDIA}]" in treemagic
    assert '>"DICOMDIR"=file' in treemagic and '>"DICOMDIR;1"=file' in treemagic
    assert (mime / "x-content" / "dicom-media.xml").is_file()

    # ... and GIO, reading only that database, agrees: by name, by content, and for a medium
    files = xdg["media"] / "files"
    files.mkdir()
    shutil.copy(str(get_testdata_file("DICOMDIR")), files / "DICOMDIR")
    shutil.copy(str(get_testdata_file("CT_small.dcm")), files / "ct.dcm")
    shutil.copy(str(get_testdata_file("CT_small.dcm")), files / "IM000001")
    for name in ("DICOMDIR", "ct.dcm", "IM000001"):
        assert content_type(files / name, xdg["empty"]) == desktop.DICOM, name
    disc = xdg["media"] / "disc"
    disc.mkdir()
    shutil.copy(str(get_testdata_file("DICOMDIR")), disc / "DICOMDIR")
    assert media_types(disc, xdg["empty"]) == [desktop.DICOM_MEDIA]
    assert media_types(files.parent, xdg["empty"]) == []  # no DICOMDIR at its root

    # Lightbox opens DICOM files and media; the file manager still opens folders
    assert xdg_mime_default(desktop.DICOM) == f"{APP_ID}.desktop"
    assert xdg_mime_default(desktop.DICOM_MEDIA) == f"{APP_ID}.desktop"
    assert xdg_mime_default(desktop.FOLDER) == "files.desktop"
    assert any("files.desktop stays the default for folders" in n for n in notes), notes
    cache = (data / "applications" / "mimeinfo.cache").read_text(encoding="utf-8")
    assert f"{desktop.DICOM_MEDIA}={APP_ID}.desktop;" in cache.splitlines()

    # uninstall removes it all again
    removed = desktop.uninstall(notes=notes)
    assert sorted(removed) == sorted(written)
    assert not any(path.exists() for path in written)
    assert "dicom" not in (mime / "globs2").read_text(encoding="utf-8")
    assert "dicom" not in (mime / "treemagic").read_bytes().decode("ascii")
    assert APP_ID not in (data / "applications" / "mimeinfo.cache").read_text(encoding="utf-8")
    assert xdg_mime_default(desktop.DICOM) == ""
    assert xdg_mime_default(desktop.DICOM_MEDIA) == ""
    assert xdg_mime_default(desktop.FOLDER) == "files.desktop"
    mimeapps = (xdg["config"] / "mimeapps.list").read_text(encoding="utf-8")
    assert APP_ID not in mimeapps and "inode/directory=files.desktop" in mimeapps
    assert desktop.uninstall() == []  # twice is harmless


def test_missing_tools_are_notes_not_failures(
    xdg: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(xdg["empty"]))
    notes: list[str] = []
    written = desktop.install(notes=notes)
    assert all(path.is_file() for path in written)
    for tool in ("update-desktop-database", "update-mime-database", "xdg-mime"):
        assert any(note.startswith(tool) for note in notes), (tool, notes)
    assert not (xdg["config"] / "mimeapps.list").exists()
    assert sorted(desktop.uninstall()) == sorted(written)


def test_a_failing_tool_is_an_error(xdg: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    tools = xdg["empty"]
    (tools / "update-mime-database").write_text("#!/bin/sh\necho 'broken package' >&2\nexit 1\n")
    (tools / "update-mime-database").chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    with pytest.raises(desktop.DesktopError, match=r"update-mime-database failed.*broken package"):
        desktop.install()
    assert (xdg["data"] / "mime" / "packages" / f"{APP_ID}.xml").is_file()


def test_a_prefix_gets_the_files_but_no_defaults(xdg: dict[str, Path], tmp_path: Path) -> None:
    prefix = tmp_path / "stage" / "usr"
    written = desktop.install(prefix)
    assert sorted(written) == sorted(desktop.files(prefix / "share"))
    assert not (xdg["config"] / "mimeapps.list").exists()
    assert not any(xdg["data"].iterdir())
    assert sorted(desktop.uninstall(prefix)) == sorted(written)


def test_a_system_installation_gets_an_icon_cache_but_no_defaults(
    xdg: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(desktop, "SYSTEM_PREFIX", tmp_path / "usr" / "local")
    notes: list[str] = []
    written = desktop.install(system=True, notes=notes)
    share = tmp_path / "usr" / "local" / "share"
    assert sorted(written) == sorted(desktop.files(share))
    cache = share / "icons" / "hicolor" / "icon-theme.cache"
    if shutil.which("gtk-update-icon-cache"):
        assert cache.is_file()
    else:
        assert any(n.startswith("gtk-update-icon-cache is not installed") for n in notes)
    assert not (xdg["config"] / "mimeapps.list").exists()
    assert sorted(desktop.uninstall(system=True)) == sorted(written)


def test_forget_defaults_keeps_the_rest_of_mimeapps_list(tmp_path: Path) -> None:
    mimeapps = tmp_path / "mimeapps.list"
    ours = f"{APP_ID}.desktop"
    mimeapps.write_text(
        "# mine\n[Default Applications]\n"
        f"application/dicom={ours}\ntext/plain=editor.desktop\n\n"
        f"[Added Associations]\napplication/dicom=other.desktop;{ours};\n"
        f"[Removed Associations]\nimage/png={ours};\n",
        encoding="utf-8",
    )
    assert desktop.forget_defaults(mimeapps, ours)
    assert mimeapps.read_text(encoding="utf-8") == (
        "# mine\n[Default Applications]\ntext/plain=editor.desktop\n\n"
        "[Added Associations]\napplication/dicom=other.desktop;\n"
        f"[Removed Associations]\nimage/png={ours};\n"
    )
    assert not desktop.forget_defaults(mimeapps, ours)
    assert not desktop.forget_defaults(tmp_path / "absent.list", ours)


def test_the_command_line_installs_and_uninstalls(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    result = lightbox("desktop", "install", "--prefix", str(prefix))
    assert result.returncode == 0, result.stderr
    target = prefix / "share" / "applications" / f"{APP_ID}.desktop"
    assert f"installed {target}" in result.stdout.splitlines()
    result = lightbox("desktop", "uninstall", "--prefix", str(prefix))
    assert result.returncode == 0, result.stderr
    assert f"removed {target}" in result.stdout.splitlines() and not target.exists()
    result = lightbox("desktop", "install", "--prefix", str(prefix), "--system")
    assert result.returncode == 2  # one place or the other
