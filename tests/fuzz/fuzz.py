"""The fuzz harness: ``make fuzz`` (long, coverage-guided) and the smoke runs of ``make test``.

Usage (from the repository root, with the project's venv)::

    python tests/fuzz/fuzz.py run [--seconds 3600] [--jobs 2] [--targets read,decode,...]
                                  [--engine atheris|random] [--slice 300]
    python tests/fuzz/fuzz.py worker --target decode --engine random --runs 200 --seed 0
    python tests/fuzz/fuzz.py replay [--target decode] FILE_OR_FOLDER...
    python tests/fuzz/fuzz.py seeds

Engines
    ``atheris`` (the default when it is installed): libFuzzer's coverage-guided loop over
    Python code instrumented by atheris (viewer and pydicom), with the DICOM-aware mutations of
    :mod:`tests.fuzz.mutate` as its custom mutator (a quarter of the time libFuzzer's own byte
    mutations). libFuzzer detects uncaught exceptions, aborts and segfaults, hangs
    (``-timeout``) and memory (``-rss_limit_mb``) and writes the input to ``.crashes/``.
    ``random``: the same mutations without coverage, from a fixed seed (reproducible; used by
    the tests). The worker writes each input to ``current-PID.bin`` before running it: when the
    process dies (abort, segfault, the per-input watchdog for hangs), its parent keeps that
    input as the crash.

``run`` shares the time between the targets round-robin in slices, ``--jobs`` workers at a
time; each target's corpus (``.work/<target>/corpus``) survives between slices and runs.
It prints a summary (executions, coverage, corpus, crashes) and exits 1 if any crash, hang or
memory finding was written during the run. Every worker runs under RLIMIT_AS (3 GiB): a
declared 4 GiB length that allocates shows as "not enough memory", which the targets report.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fuzz.mutate import Mutator  # noqa: E402
from tests.fuzz.targets import TARGETS, Finding  # noqa: E402

CRASHES = HERE / ".crashes"
WORK = HERE / ".work"
REGRESSIONS = HERE / "corpus" / "regressions"
SHARED = Path(os.environ.get("LIGHTBOX_SHARED_DATA", ROOT.parent / "shared" / "data"))

ADDRESS_SPACE = 3 << 30  # RLIMIT_AS of every worker
PER_INPUT_SECONDS = 10
MAX_LEN = 160_000
MAX_SEED = 160_000

# pydicom's bundled test files: every transfer syntax, small (get_testdata_file names).
PYDICOM_SEEDS = (
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_truncated.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_rle_16bit.dcm",
    "SC_rgb_rle_32bit_2frame.dcm",
    "SC_rgb_rle_2frame.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "SC_rgb_small_odd_jpeg.dcm",
    "SC_rgb_jpeg_gdcm.dcm",
    "SC_rgb_small_odd_big_endian.dcm",
    "SC_rgb_jls_lossy_line.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
    "JPEGLSNearLossless_08.dcm",
    "JPEG2000.dcm",
    "JPGExtended.dcm",
    "JPEG-lossy.dcm",
    "693_J2KI.dcm",
    "GDCMJ2K_TextGBR.dcm",
    "rtdose_rle_1frame.dcm",
    "rtdose_1frame.dcm",
    "image_dfl.dcm",
    "ExplVR_BigEndNoMeta.dcm",
    "ExplVR_LitEndNoMeta.dcm",
    "no_meta_group_length.dcm",
    "meta_missing_tsyntax.dcm",
    "nested_priv_SQ.dcm",
    "UN_sequence.dcm",
    "badVR.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "test-SR.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "dicomdirtests/DICOMDIR",
    "dicomdirtests/DICOMDIR-implicit",
    "dicomdirtests/DICOMDIR-bigEnd",
    "dicomdirtests/DICOMDIR-nooffset",
    "dicomdirtests/DICOMDIR-reordered",
)
# ../shared/data (README.md, MANIFEST.tsv): the hard cases and each transfer syntax, small.
SHARED_SEEDS = (
    "pydicom-data/JLSL_08_07_0_1F.dcm",
    "pydicom-data/liver_deflate.dcm",
    "pydicom-data/liver_j2k.dcm",
    "pydicom-data/liver_rle.dcm",
    "pydicom-data/liver_nonbyte_aligned_rle.dcm",
    "hard/NM1_JPLY",
    "hard/GH340.dcm",
    "hard/MR1_JPLY",
    "dwv/dwv-test-sequence.dcm",
    "dwv/bbmri_media/bbmri.dcmdir",
    "dwv/orphan_dicomdir/DICOMDIR",
)


def seed_files() -> list[Path]:
    """The seed inputs that exist here (pydicom's, ../shared/data's, the regressions)."""
    files: list[Path] = []
    try:
        import pydicom

        base = Path(pydicom.__file__).parent / "data" / "test_files"
        files += [base / name for name in PYDICOM_SEEDS if (base / name).is_file()]
    except ImportError:  # pragma: no cover - pydicom is a dependency
        pass
    files += [SHARED / name for name in SHARED_SEEDS if (SHARED / name).is_file()]
    if REGRESSIONS.is_dir():
        files += sorted(
            p for p in REGRESSIONS.iterdir() if p.is_file() and p.suffix not in (".txt", ".md")
        )
    return [f for f in files if 0 < f.stat().st_size <= MAX_SEED]


def limit_memory() -> None:
    """RLIMIT_AS for this process: an allocation from a declared length fails fast."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _quiet_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# --------------------------------------------------------------------------------------------
# Workers


def signature(reason: str) -> str:
    """What makes two findings the same bug: the message without numbers, paths and quotes."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason)
    text = re.sub(r"/\S+", "PATH", text)
    return re.sub(r"\d+", "N", text)[:200]


def _save_crash(
    target: str, data: bytes, reason: str, kind: str = "finding", folder: Path | None = None
) -> Path:
    """Keep one input per kind of finding (named by its signature); the note says why."""
    import hashlib

    folder = folder or CRASHES
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(signature(reason).encode()).hexdigest()[:12]
    path = folder / f"{target}-{kind}-{digest}"
    if not path.exists() or len(data) < path.stat().st_size:  # keep the smallest input
        path.write_bytes(data)
        path.with_suffix(".txt").write_text(reason + "\n", encoding="utf-8")
    return path


class _Findings:
    """Findings of one worker: saved, printed once per kind, fuzzing goes on."""

    def __init__(self, target: str, folder: Path | None = None) -> None:
        self.target = target
        self.folder = folder
        self.seen: set[str] = set()
        self.count = 0

    def add(self, data: bytes, exc: Finding) -> None:
        self.count += 1
        reason = f"{self.target}: {exc}"
        saved = _save_crash(self.target, data, reason, folder=self.folder)
        if saved.name not in self.seen:
            self.seen.add(saved.name)
            print(f"FINDING {saved}: {str(exc)[:400]}", flush=True)


def random_worker(
    target: str, seed: int, runs: int, seconds: float, workdir: Path, crashes: Path | None = None
) -> int:
    """The plain engine: mutate seeds with ``random.Random(seed)``; print a JSON summary."""
    limit_memory()
    run = TARGETS[target]
    workdir.mkdir(parents=True, exist_ok=True)
    current = workdir / f"current-{os.getpid()}.bin"
    scratch = workdir / f"t-{os.getpid()}"
    seeds = [p.read_bytes() for p in seed_files()]
    if not seeds:
        print("no seed files found", file=sys.stderr)
        return 3
    rng = random.Random(seed)
    mutator = Mutator(rng, seeds)
    recent: list[bytes] = []
    findings = _Findings(target, crashes)
    execs = 0
    deadline = time.monotonic() + seconds
    while (runs <= 0 or execs < runs) and time.monotonic() < deadline:
        base = rng.choice(recent) if recent and rng.random() < 0.3 else rng.choice(seeds)
        data = mutator.mutate(base, MAX_LEN)
        current.write_bytes(data)
        faulthandler.dump_traceback_later(PER_INPUT_SECONDS, exit=True)
        try:
            run(data, scratch)
        except Finding as exc:
            findings.add(data, exc)
        finally:
            faulthandler.cancel_dump_traceback_later()
        execs += 1
        recent.append(data)
        if len(recent) > 64:
            recent.pop(rng.randrange(len(recent)))
    current.unlink(missing_ok=True)
    shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps({"target": target, "execs": execs, "findings": findings.count}), flush=True)
    return 0  # findings are saved; a worker that dies prints no summary line


def _seed_folder(workdir: Path) -> Path:
    """The seeds as files for libFuzzer, in a folder named after their contents and made whole
    before it appears (a rename): the jobs of one target share it, and one job never deletes
    it under another (it did, and the other's slice ended with FileNotFoundError)."""
    files = seed_files()
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    seeds = workdir / f"seeds-{digest.hexdigest()[:16]}"
    if seeds.is_dir():
        return seeds
    partial = Path(tempfile.mkdtemp(prefix=".seeds-", dir=workdir))
    for i, path in enumerate(files):
        shutil.copyfile(path, partial / f"{i:03d}-{path.name}")
    try:
        partial.rename(seeds)
    except OSError:  # another job made it first
        shutil.rmtree(partial, ignore_errors=True)
    return seeds


def atheris_worker(target: str, seconds: int, workdir: Path) -> None:
    """libFuzzer through atheris, viewer and pydicom instrumented; never returns."""
    import atheris

    limit_memory()
    with atheris.instrument_imports(include=["viewer", "pydicom"]):
        import pydicom  # noqa: F401

        import viewer.cli
        import viewer.imaging.decode
        import viewer.imaging.display
        import viewer.imaging.overlay
        import viewer.imaging.render
        import viewer.media.dicomdir
        import viewer.media.scan  # noqa: F401

    run = TARGETS[target]
    pool = [p.read_bytes() for p in seed_files()]
    rng = random.Random()
    mutator = Mutator(rng, pool)
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = _seed_folder(workdir)
    CRASHES.mkdir(parents=True, exist_ok=True)
    scratch = workdir / f"t-{os.getpid()}"  # concurrent runs of one target must not collide

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng.seed(seed)
        if rng.random() < 0.25:
            return bytes(atheris.Mutate(data, max_size))
        return mutator.mutate(data, max_size)

    findings = _Findings(target)

    def test_one_input(data: bytes) -> None:
        try:
            run(data, scratch)
        except Finding as exc:  # saved; libFuzzer goes on (aborts and hangs still stop it)
            findings.add(data, exc)

    argv = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        f"-timeout={PER_INPUT_SECONDS}",
        "-rss_limit_mb=2560",
        f"-max_len={MAX_LEN}",
        f"-artifact_prefix={CRASHES}/{target}-",
        "-print_final_stats=1",
        "-reload=0",
        str(corpus),
        str(seeds),
    ]
    atheris.Setup(argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


# --------------------------------------------------------------------------------------------
# The supervisor: `run`


def _engine_default() -> str:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "random"
    return "atheris"


class Slice:
    """One worker process running one target for a while."""

    def __init__(self, target: str, engine: str, seconds: int, number: int) -> None:
        self.target = target
        self.engine = engine
        self.seconds = seconds
        self.workdir = WORK / target
        self.workdir.mkdir(parents=True, exist_ok=True)
        logs = WORK / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{target}-{os.getpid()}-{number:03d}.log"
        self.started = time.monotonic()
        self.wall_start = time.time() - 1
        cmd = [sys.executable, str(Path(__file__).resolve()), "worker", "--target", target,
               "--engine", engine, "--seconds", str(seconds),
               "--seed", str(random.randrange(1 << 30))]  # fmt: skip
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env=_quiet_environment(), cwd=ROOT
        )

    def overdue(self) -> bool:
        return time.monotonic() - self.started > self.seconds + 120


class Totals:
    def __init__(self) -> None:
        self.execs: dict[str, int] = {}
        self.cov: dict[str, tuple[int, int]] = {}
        self.crashes: list[str] = []
        self.slices = 0


_EXECS = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_PROGRESS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+)")
_INITED = re.compile(r"INITED cov: (\d+)")


def _account(s: Slice, totals: Totals, before: set[str]) -> tuple[int, int]:
    """Add the slice's executions and crashes to ``totals``; return (execs, new crashes)."""
    text = s.log_path.read_text("utf-8", "replace")
    code = s.proc.returncode
    execs = 0
    if s.engine == "atheris":
        found = _EXECS.findall(text)
        progress = _PROGRESS.findall(text)
        if found:
            execs = int(found[-1])
        elif progress:
            execs = int(progress[-1][0])
        inited = _INITED.findall(text)
        first = int(inited[0]) if inited else 0
        last = int(progress[-1][1]) if progress else first
        old = totals.cov.get(s.target)
        totals.cov[s.target] = (old[0] if old else first, max(last, old[1] if old else 0))
    else:
        summary = False
        for line in text.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError, KeyError):
                    execs = int(json.loads(line)["execs"])
                    summary = True
        current = s.workdir / f"current-{s.proc.pid}.bin"
        if not summary and current.exists():
            kind = "timeout" if "Timeout" in text else "crash"
            reason = f"{s.target}: worker died (exit {code}); log {s.log_path}"
            _save_crash(s.target, current.read_bytes(), reason, kind)
            current.unlink()
    totals.execs[s.target] = totals.execs.get(s.target, 0) + execs
    totals.slices += 1
    reported = {Path(m).name for m in re.findall(r"^FINDING (\S+?): ", text, re.M)}
    # libFuzzer's own artifacts (aborts, timeouts, memory) of this slice's target
    artifacts = {
        name
        for name in _crash_files() - before
        if name.startswith(f"{s.target}-") and (CRASHES / name).stat().st_mtime >= s.wall_start
    }
    new = sorted((artifacts | reported) - set(totals.crashes))
    for name in new:
        totals.crashes.append(name)
        print(f"  CRASH {s.target}: {CRASHES / name} (log {s.log_path})", flush=True)
    return execs, len(new)


def _crash_files() -> set[str]:
    if not CRASHES.is_dir():
        return set()
    return {p.name for p in CRASHES.iterdir() if p.suffix != ".txt"}


def run(seconds: int, jobs: int, targets: list[str], engine: str, slice_seconds: int) -> int:
    before = _crash_files()
    totals = Totals()
    deadline = time.monotonic() + seconds
    queue = list(targets)
    running: list[Slice] = []
    carry: dict[str, int] = {}
    broken = 0  # slices in a row that ran nothing and found nothing
    number = 0
    print(f"fuzzing {', '.join(targets)} with {engine} for {seconds} s on {jobs} job(s); "
          f"crashes go to {CRASHES}", flush=True)  # fmt: skip

    def stop_all(*_: object) -> None:
        for s in running:
            with contextlib.suppress(ProcessLookupError):
                s.proc.send_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(2)))
    try:
        while True:
            left = deadline - time.monotonic()
            while len(running) < jobs and left >= 5:
                target = queue.pop(0)
                if target not in queue:
                    queue.append(target)
                number += 1
                length = carry.pop(target, slice_seconds)
                running.append(Slice(target, engine, int(min(length, left)), number))
            if not running:
                break
            time.sleep(0.5)
            for s in list(running):
                if s.proc.poll() is None and s.overdue():
                    s.proc.kill()
                    s.proc.wait()
                if s.proc.poll() is not None:
                    running.remove(s)
                    s.log.close()
                    execs, crashed = _account(s, totals, before)
                    rest = s.seconds - (time.monotonic() - s.started)
                    broken = broken + 1 if execs == 0 and not crashed else 0
                    if broken >= 3:
                        print(f"  the workers do not start (see {s.log_path}): stopping",
                              flush=True)  # fmt: skip
                        stop_all()
                        return 3
                    if crashed and rest > 10:
                        # a native crash ended the slice early: the target gets its time back
                        carry[s.target] = int(rest)
                        queue.insert(0, s.target)
                    print(f"  {time.strftime('%H:%M:%S')} {s.target}: slice ended "
                          f"(exit {s.proc.returncode}); execs so far "
                          f"{totals.execs.get(s.target, 0)}", flush=True)  # fmt: skip
    except KeyboardInterrupt:
        stop_all()
        for s in running:
            s.proc.wait()
            s.log.close()
            _account(s, totals, before)
    print("\nfuzz summary")
    for target in targets:
        cov = totals.cov.get(target)
        cov_text = f"; coverage {cov[0]} -> {cov[1]} (+{cov[1] - cov[0]})" if cov else ""
        corpus = WORK / target / "corpus"
        size = len(list(corpus.iterdir())) if corpus.is_dir() else 0
        print(f"  {target:9s} execs {totals.execs.get(target, 0):>8}{cov_text}; corpus {size}")
    print(f"  slices {totals.slices}; crashes/hangs/memory findings: {len(totals.crashes)}")
    for name in totals.crashes:
        note = (CRASHES / name).with_suffix(".txt")
        why = note.read_text("utf-8", "replace").strip() if note.exists() else ""
        print(f"    {CRASHES / name} {why[:300]}")
    return 1 if totals.crashes else 0


# --------------------------------------------------------------------------------------------
# Replay


def replay(paths: list[Path], targets: list[str]) -> int:
    """Run every target on every input here; print one line per (input, target)."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(
                f for f in p.iterdir() if f.is_file() and f.suffix not in (".txt", ".md")
            )
        else:
            files.append(p)
    limit_memory()
    failed = 0
    workdir = WORK / f"replay-{os.getpid()}"
    for path in files:
        data = path.read_bytes()
        for target in targets:
            try:
                TARGETS[target](data, workdir)
            except Finding as exc:
                failed += 1
                print(f"FAIL {path.name} [{target}]: {exc}", flush=True)
            else:
                print(f"ok   {path.name} [{target}]", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


def _reproduces(data: bytes, target: str, wanted: str, workdir: Path) -> bool:
    try:
        TARGETS[target](data, workdir)
    except Finding as exc:
        return signature(f"{target}: {exc}") == wanted
    return False


def shrink(source: Path, target: str, output: Path, budget: int = 3000) -> int:
    """Make a finding's input small and anonymous while it still fails the same way.

    Values of the Patient, Institution and physician elements (groups 0010, 0008 names) are
    overwritten with X first, then chunks are deleted (a plain delta debugging pass).
    """
    from tests.fuzz.mutate import elements

    limit_memory()
    workdir = WORK / f"shrink-{os.getpid()}"
    data = source.read_bytes()
    try:
        TARGETS[target](data, workdir)
    except Finding as exc:
        wanted = signature(f"{target}: {exc}")
    else:
        print(f"{source}: does not fail the {target} target", file=sys.stderr)
        return 1
    # names and IDs of people and places (PS3.15 E.1-1); all of group 0010 too
    identifying = {0x00080080, 0x00080081, 0x00080090, 0x00081050, 0x00081070, 0x00080050}
    work = bytearray(data)
    for el in elements(data):
        if el.tag in identifying or el.tag >> 16 == 0x0010:
            end = min(el.value_at + el.length, len(work))
            trial = bytearray(work)
            trial[el.value_at : end] = b"X" * (end - el.value_at)
            if _reproduces(bytes(trial), target, wanted, workdir):
                work = trial
    tries = 0
    chunk = max(1, len(work) // 2)
    while chunk >= 1 and tries < budget:
        pos = 0
        changed = False
        while pos < len(work) and tries < budget:
            trial = work[:pos] + work[pos + chunk :]
            tries += 1
            if trial and _reproduces(bytes(trial), target, wanted, workdir):
                work = trial
                changed = True
            else:
                pos += chunk
        if not changed:
            chunk //= 2
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(bytes(work))
    print(f"{output}: {len(data)} -> {len(work)} bytes after {tries} tries ({wanted})")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fuzz.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="fuzz every target round-robin")
    p_run.add_argument("--seconds", type=int, default=3600)
    p_run.add_argument("--jobs", type=int, default=2)
    p_run.add_argument("--targets", default=",".join(TARGETS))
    p_run.add_argument("--engine", choices=("atheris", "random"), default=_engine_default())
    p_run.add_argument("--slice", type=int, default=300, help="seconds per worker slice")
    p_work = sub.add_parser("worker", help="one target in this process")
    p_work.add_argument("--target", choices=list(TARGETS), required=True)
    p_work.add_argument("--engine", choices=("atheris", "random"), default="random")
    p_work.add_argument("--seconds", type=int, default=60)
    p_work.add_argument("--runs", type=int, default=0)
    p_work.add_argument("--seed", type=int, default=0)
    p_work.add_argument("--workdir", type=Path, help="scratch folder (default .work/TARGET)")
    p_work.add_argument("--crashes", type=Path, help="where findings go (default .crashes)")
    p_replay = sub.add_parser("replay", help="run the targets on saved inputs")
    p_replay.add_argument("--target", action="append", choices=list(TARGETS))
    p_replay.add_argument("paths", nargs="+", type=Path)
    p_shrink = sub.add_parser("shrink", help="minimise and anonymise a finding's input")
    p_shrink.add_argument("--target", choices=list(TARGETS), required=True)
    p_shrink.add_argument("source", type=Path)
    p_shrink.add_argument("output", type=Path)
    sub.add_parser("seeds", help="list the seed files")
    args = parser.parse_args(argv)
    if args.command == "run":
        targets = [t for t in args.targets.split(",") if t]
        unknown = [t for t in targets if t not in TARGETS]
        if unknown:
            parser.error(f"unknown target(s): {', '.join(unknown)}")
        return run(args.seconds, max(1, args.jobs), targets, args.engine, max(10, args.slice))
    if args.command == "worker":
        workdir = args.workdir or WORK / args.target
        if args.engine == "atheris":
            atheris_worker(args.target, args.seconds, workdir)
            return 0
        return random_worker(args.target, args.seed, args.runs, args.seconds, workdir, args.crashes)
    if args.command == "replay":
        return replay(args.paths, args.target or list(TARGETS))
    if args.command == "shrink":
        return shrink(args.source, args.target, args.output)
    for path in seed_files():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
