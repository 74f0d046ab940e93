#!/usr/bin/env bash
# `make smoke`: build the one-folder bundle (packaging/lightbox.spec) in a fresh clone of HEAD and
# check that it runs on its own: the clone (its sources and .venv) is deleted before the bundle
# runs, PATH is /usr/bin:/bin, HOME and LIGHTBOX_HOME are new empty folders. Linux (glibc) only:
# the shared-library checks read the dynamic loader's LD_DEBUG report.
#
# Each step prints what it checked; the first failure stops the script with exit 1 and keeps
# the temporary folder (its path is printed); on success the folder is removed.
set -euo pipefail

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lightbox-smoke.XXXXXX")
passed=0
finish() {
    if [ "$passed" = 1 ]; then
        rm -rf "$tmp"
    else
        echo "smoke: FAILED; everything is kept in $tmp" >&2
    fi
}
trap finish EXIT

step() { printf '\nsmoke: == %s\n' "$*"; }
ok() { printf 'smoke: ok: %s\n' "$*"; }
fail() {
    printf 'smoke: FAIL: %s\n' "$*" >&2
    exit 1
}
# Show the end of a log after a failed command.
tail_of() { tail -n "${2:-30}" "$1" | sed 's/^/    | /' >&2; }

for tool in git make xvfb-run; do
    command -v "$tool" >/dev/null || fail "$tool is missing (packaging/system-deps.sh lists xvfb)"
done

# -- 1. a fresh clone of HEAD ----------------------------------------------------------------
step "fresh clone of HEAD"
head=$(git -C "$repo" rev-parse HEAD)
git clone --quiet --no-checkout "$repo" "$tmp/clone"
git -C "$tmp/clone" checkout --quiet --detach "$head"
changed=$(git -C "$repo" status --porcelain | wc -l)
ok "cloned $(git -C "$tmp/clone" log -1 --format='%h %s' | cut -c1-90)"
if [ "$changed" != 0 ]; then
    echo "smoke: note: $changed uncommitted change(s) in $repo are not part of this test"
fi

# -- 2. the clone's virtual environment and the sample files --------------------------------
step "virtual environment of the clone (make venv) and sample files"
start=$SECONDS
make -C "$tmp/clone" venv >"$tmp/venv.log" 2>&1 || { tail_of "$tmp/venv.log"; fail "make venv"; }
ok "make venv: $((SECONDS - start)) s"
venv_py="$tmp/clone/.venv/bin/python"
mkdir -p "$tmp/samples/folder" "$tmp/reference"
# pydicom's bundled files: JPEG 2000 lossless (python-gdcm first, else pylibjpeg-openjpeg),
# 12-bit JPEG Extended (only pylibjpeg-libjpeg decodes it here), RLE (pylibjpeg-rle first), a
# 30-frame YBR colour cine (the movie), and 70 copies of a CT in one folder: listing 64 files or
# more reads their headers in the decoder process pool, so `ls` checks the pool too.
"$venv_py" - "$tmp/samples" <<'EOF'
import shutil
import sys
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file

out = Path(sys.argv[1])
names = {
    "j2k.dcm": "MR_small_jp2klossless.dcm",
    "jpeg12.dcm": "JPEG-lossy.dcm",
    "rle.dcm": "MR_small_RLE.dcm",
    "cine.dcm": "examples_ybr_color.dcm",
}
for target, name in names.items():
    shutil.copyfile(get_testdata_file(name), out / target)
    ts = dcmread(out / target, stop_before_pixels=True).file_meta.TransferSyntaxUID
    print(f"smoke: sample {target}: pydicom's {name} ({ts.name})")
for number in range(70):
    shutil.copyfile(get_testdata_file("CT_small.dcm"), out / "folder" / f"ct{number:02}.dcm")
print("smoke: sample folder/: 70 copies of pydicom's CT_small.dcm")
EOF
# The same renders from the clone's own environment: the bundle must write the same PNGs.
for name in j2k jpeg12 rle; do
    "$tmp/clone/.venv/bin/lightbox" render "$tmp/samples/$name.dcm" -o "$tmp/reference/$name.png" \
        >/dev/null || fail "the clone's environment cannot render $name.dcm"
done
version=$("$tmp/clone/.venv/bin/lightbox" --version)
ok "reference PNGs rendered by the clone's .venv; its version: $version"

# -- 3. the bundle ----------------------------------------------------------------------------
step "make bundle (in the clone)"
start=$SECONDS
make -C "$tmp/clone" bundle >"$tmp/bundle.log" 2>&1 || { tail_of "$tmp/bundle.log"; fail "make bundle"; }
ok "make bundle: $((SECONDS - start)) s"
[ -x "$tmp/clone/dist/lightbox/lightbox" ] || fail "make bundle wrote no dist/lightbox/lightbox"
cp "$tmp/clone/build/lightbox/warn-lightbox.txt" "$tmp/" 2>/dev/null || true
mv "$tmp/clone/dist/lightbox" "$tmp/lightbox"
rm -rf "$tmp/clone"
ok "bundle moved to $tmp/lightbox; the clone (sources, .venv, build/) deleted"
ok "bundle size: $(du -sh "$tmp/lightbox" | cut -f1) ($(find "$tmp/lightbox" -type f | wc -l) files)"

# -- 4. the bundle on its own -----------------------------------------------------------------
app="$tmp/lightbox/lightbox"
mkdir -p "$tmp/home" "$tmp/lightbox-home" "$tmp/run" "$tmp/xdg-runtime"
chmod 700 "$tmp/xdg-runtime"
cd "$tmp/run"
# A clean environment: no VIRTUAL_ENV, PYTHONPATH or PYTHONHOME; nothing of the user's home.
run() {
    env -i PATH=/usr/bin:/bin LANG=C.UTF-8 HOME="$tmp/home" LIGHTBOX_HOME="$tmp/lightbox-home" \
        XDG_RUNTIME_DIR="$tmp/xdg-runtime" "$@"
}
# Shared objects a run loaded (from the loader's LD_DEBUG=files report in files $1.*): each
# must come from the bundle or from the system's library folders, never from a Python
# installation or the clone.
check_libraries() {
    local report=$1 what=$2 outside
    cat "$report".* | grep -o 'calling init: .*' | sed 's/^calling init: //' | sort -u \
        >"$report.loaded"
    [ -s "$report.loaded" ] || fail "$what: the loader reported no libraries (LD_DEBUG)"
    outside=$(grep -v -e "^$tmp/lightbox/" -e '^/lib/' -e '^/lib64/' -e '^/usr/lib/' \
        -e '^/usr/lib64/' "$report.loaded" || true)
    [ -z "$outside" ] || fail "$what loaded libraries from elsewhere: $outside"
    ok "$what: $(grep -c "^$tmp/lightbox/" "$report.loaded") libraries from the bundle," \
        "$(grep -vc "^$tmp/lightbox/" "$report.loaded") from the system's library folders"
}
is_png() {
    [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || return 1
    set -- $(od -An -tu1 -j16 -N8 "$1")
    echo "$(($1 << 24 | $2 << 16 | $3 << 8 | $4))x$(($5 << 24 | $6 << 16 | $7 << 8 | $8))"
}

step "environment of the runs"
ok "PATH=/usr/bin:/bin, no VIRTUAL_ENV/PYTHONPATH/PYTHONHOME, empty HOME and LIGHTBOX_HOME" \
    "under $tmp, working folder $tmp/run"

step "lightbox --version"
out=$(run "$app" --version) || fail "--version exited $?"
[ "$out" = "$version" ] || fail "--version printed '$out', the sources say '$version'"
ok "printed '$out' (the same as the sources)"

step "lightbox render: JPEG 2000, 12-bit JPEG, RLE to PNG"
run "$app" -v render "$tmp/samples/j2k.dcm" -o "$tmp/run/j2k.png" >"$tmp/render.out" \
    2>"$tmp/render.err" || { tail_of "$tmp/render.err"; fail "render j2k.dcm exited non-zero"; }
for plugin in openjpeg libjpeg rle; do
    grep -q "Found plugin '$plugin'" "$tmp/render.err" ||
        fail "pylibjpeg did not find its $plugin plugin (entry points: copy_metadata in the spec)"
done
ok "pylibjpeg found its openjpeg, libjpeg and rle plugins (entry points in the bundle)"
for name in j2k jpeg12 rle; do
    if [ "$name" = j2k ]; then
        # The loader's report of the JPEG 2000 run: the decoders' extension modules.
        run env LD_DEBUG=files LD_DEBUG_OUTPUT="$tmp/ld-render" \
            "$app" render "$tmp/samples/$name.dcm" -o "$tmp/run/$name.png" >/dev/null 2>&1 ||
            fail "render $name.dcm exited non-zero"
    else
        run "$app" render "$tmp/samples/$name.dcm" -o "$tmp/run/$name.png" >/dev/null \
            2>"$tmp/render-$name.err" || { tail_of "$tmp/render-$name.err"; fail "render $name.dcm"; }
    fi
    size=$(is_png "$tmp/run/$name.png") || fail "render $name.dcm wrote no PNG"
    cmp -s "$tmp/run/$name.png" "$tmp/reference/$name.png" ||
        fail "render $name.dcm: the PNG differs from the clone's .venv rendering"
    ok "$name.dcm -> $name.png: a ${size} PNG, byte for byte the one the .venv renders"
done
check_libraries "$tmp/ld-render" "render j2k.dcm"
for module in _gdcmswig _openjpeg _libjpeg rle; do
    grep -q "^$tmp/lightbox/\(.*/\)\?$module[.a-z0-9_-]*\.so$" "$tmp/ld-render.loaded" ||
        fail "render did not load the extension module $module from the bundle"
done
ok "render loaded the extension modules of gdcm (_gdcmswig), openjpeg, libjpeg and rle" \
    "from the bundle"

step "lightbox movie (PyAV): the 30-frame cine to MP4"
run "$app" movie "$tmp/samples/cine.dcm" -o "$tmp/run/cine.mp4" >"$tmp/movie.out" \
    2>"$tmp/movie.err" || { tail_of "$tmp/movie.err"; fail "movie exited non-zero"; }
[ "$(head -c 8 "$tmp/run/cine.mp4" | tail -c 4)" = ftyp ] || fail "movie wrote no MP4"
ok "$(cat "$tmp/movie.out") ($(wc -c <"$tmp/run/cine.mp4") bytes, an MP4)"

step "lightbox ls: a folder of 70 files (headers read in the process pool)"
run "$app" -v ls "$tmp/samples/folder" >"$tmp/ls.out" 2>"$tmp/ls.err" ||
    { tail_of "$tmp/ls.err"; fail "ls exited non-zero"; }
grep -q '(70 instances)' "$tmp/ls.out" || { tail_of "$tmp/ls.out"; fail "ls did not list 70 instances"; }
if grep -E 'scanning in one thread|scan workers failed|unrecognized arguments' "$tmp/ls.err" >&2; then
    fail "ls: the process pool did not work in the bundle (multiprocessing.freeze_support?)"
fi
ok "listed: $(grep '(70 instances)' "$tmp/ls.out" | sed 's/^ *//')"
ok "the decoder process pool (fork server started from the bundle) read the headers"

step "lightbox open --quit-when-shown 120 under Xvfb (empty store: the demo study)"
set +e
run xvfb-run -a env LD_DEBUG=files LD_DEBUG_OUTPUT="$tmp/ld-gui" \
    "$app" open --quit-when-shown 120 >"$tmp/gui.out" 2>"$tmp/gui.err"
code=$?
set -e
[ "$code" = 0 ] || { tail_of "$tmp/gui.err"; fail "the viewer exited $code (3: no image shown)"; }
grep -q '^lightbox: shown: image 1' "$tmp/gui.out" || fail "the viewer did not say it showed an image"
ok "exit 0; $(grep '^lightbox: shown' "$tmp/gui.out")"
if grep -q 'Traceback' "$tmp/gui.err"; then
    tail_of "$tmp/gui.err"
    fail "the viewer printed a traceback"
fi
if [ -s "$tmp/gui.err" ]; then
    echo "smoke: the viewer's messages:"
    sed 's/^/    | /' "$tmp/gui.err"
fi
check_libraries "$tmp/ld-gui" "the viewer"
grep -q "$tmp/lightbox/.*/libqxcb\.so$" "$tmp/ld-gui.loaded" ||
    fail "the viewer did not load the bundle's xcb platform plugin"
ok "the viewer used the bundle's Qt (xcb platform plugin from the bundle)"
if grep -q '/libqsvg\.so$\|/libqsvgicon\.so$' "$tmp/ld-gui.loaded"; then
    ok "the SVG window icon was read through the bundle's Qt SVG plugins"
fi

passed=1
step "passed: the bundle runs without the clone, its .venv or the user's files"
