"""cstore_send and cstore_receive: 300 uncompressed 512x512 CT slices over loopback.

Data: the synthetic CT phantom of ``_data.py`` (explicit VR little endian, 300 x 512 KiB, made
once and cached in benchmarks/.cache/ct512).

- ``cstore_send``: ours = :func:`viewer.net.send.send` to a DCMTK ``storescp`` writing a folder;
  reference = DCMTK ``storescu`` sending the same files to the same ``storescp``. Target 2.
- ``cstore_receive``: DCMTK ``storescu`` pushing the files into our storage SCP until all 300 are
  indexed in a local store (:class:`viewer.store.Receiver`: each instance made durable in the
  store's spool before the answer, then imported in batches through the store's atomic import),
  vs into DCMTK ``storescp -od`` writing a folder. Target 3.

Every DCMTK tool runs with ``TCP_NODELAY=1`` (PEERS.md: DCMTK leaves Nagle on otherwise).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _data
from common import interleaved, report

from viewer.store import Receiver, Store, delete_uid, list_studies

ENV = {**os.environ, "TCP_NODELAY": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _storescu(port: int, called: str, files: list[Path]) -> None:
    args = ["storescu", "-aet", "STORESCU", "-aec", called, "127.0.0.1", str(port)]
    subprocess.run(args + [str(p) for p in files], env=ENV, check=True, capture_output=True)


def _storescp(port: int, folder: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["storescp", "-aet", "PEER", "-od", str(folder), str(port)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait(port)
    return proc


def _clear(folder: Path) -> None:
    for p in folder.iterdir():
        p.unlink()


def main() -> None:
    for tool in ("storescp", "storescu"):
        if shutil.which(tool) is None:
            print(f"bench: cstore_send skipped: {tool} (DCMTK) is not installed", flush=True)
            return
    files = _data.files(_data.series("EVRLE", 300))
    assert len(files) == 300
    work = Path(tempfile.mkdtemp(prefix="bench-net-"))
    os.environ["LIGHTBOX_HOME"] = str(work / "home")

    from viewer.net.nodes import LocalSettings, Node
    from viewer.net.scp import StorageScp
    from viewer.net.send import send

    try:
        # --- cstore_send ------------------------------------------------------------------
        out = work / "storescp"
        out.mkdir()
        port = _free_port()
        peer = _storescp(port, out)
        node = Node("peer", "PEER", "127.0.0.1", port)
        local = LocalSettings()

        def ours_send() -> None:
            result = send(node, local, files)
            assert result.sent == 300, [i.message for i in result.failed[:3]]

        try:
            ours, ref = interleaved(
                ours_send, lambda: _storescu(port, "PEER", files), setup=lambda: _clear(out)
            )
        finally:
            peer.terminate()
            peer.wait(10)
        report("cstore_send", ours, ref, 2, "300 CT 512x512 to DCMTK storescp")

        # --- cstore_receive ---------------------------------------------------------------
        ours_dir, ref_dir = work / "store", work / "ref"
        ref_dir.mkdir()
        store = Store.open(ours_dir)
        receiver = Receiver(store)

        scp_port, ref_port = _free_port(), _free_port()
        scp = StorageScp(LocalSettings(scp_port=scp_port), receiver)  # as the application wires it
        scp.start()
        ref_peer = _storescp(ref_port, ref_dir)

        def ours_receive() -> None:
            _storescu(scp_port, "LIGHTBOX", files)
            assert receiver.wait_idle(60), "the received instances were not imported"
            count = store.connection().execute("SELECT COUNT(*) FROM instances").fetchone()[0]
            assert count == 300, count

        def ref_receive() -> None:
            _storescu(ref_port, "PEER", files)

        def setup() -> None:
            for row in list_studies(store):
                delete_uid(store, row.study_instance_uid)
            _clear(ref_dir)

        try:
            ours, ref = interleaved(ours_receive, ref_receive, setup=setup)
        finally:
            scp.stop()
            receiver.close()
            store.close()
            ref_peer.terminate()
            ref_peer.wait(10)
        report(
            "cstore_receive",
            ours,
            ref,
            3,
            "storescu into our SCP until indexed in the store vs into storescp -od",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
