"""Prepares a Milvus standalone server from the ``milvus`` pip package (2.3.5) in DATA_DIR, listening on PORT, for
``deploy/local-cluster``: writes its configuration and unpacks its binary, then prints the command and environment
that run it (the cluster runs it in the background, as the service user when root).

The configuration differs from the package's in what erasure needs: Milvus keeps the files of segments that a
compaction replaced for 3 hours by default, and its message log (rocksmq) keeps every insert for 3 days; here
garbage collection runs every few seconds and drops replaced segments' files at once, and the message log keeps
messages 30 s and compacts its files every ten seconds, so that erased vectors' bytes leave the disk within
a couple of minutes. A production server needs the same settings (docs/scale.md, "Vectors on Milvus").

    python deploy/milvus_server.py DATA_DIR PORT   ->  lines: METRICS_PORT=..., LD_LIBRARY_PATH=..., COMMAND=...
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

# dotted key -> value: replaced in the package's template where the key is there, added under its section if not.
ERASURE_SETTINGS: dict[str, object] = {
    "dataCoord.gc.interval": 2,  # seconds between garbage collections (default 3600)
    "dataCoord.gc.missingTolerance": 3600,  # files not yet in the metadata (a compaction's output): keep
    "dataCoord.gc.dropTolerance": 1,  # files of segments a compaction replaced: delete at once (default 10800)
    "common.retentionDuration": 0,  # no time travel: deleted rows are not kept for old snapshots
    "rocksmq.retentionTimeInMinutes": 0.5,  # the message log keeps consumed inserts 30 s (default 3 days)
    "rocksmq.rocksmqPageSize": 4096,  # pages of 4 KB: only full pages expire (default 64 MB)
    "rocksmq.timtickerInterval": 2,  # expiry checked every two seconds (default ten minutes; Milvus's spelling)
    "rocksmq.compactionInterval": 10,  # and its files are compacted every ten seconds (default a day)
    # Buffered inserts are written to segment files every 10 s (default 10 minutes): a restarted server replays
    # the message log from its last write, which must come well before the log drops what followed.
    "dataNode.segment.syncPeriod": 10,
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def with_settings(template: str, settings: dict[str, object]) -> str:
    """``template`` with each dotted key set: its line replaced, or a line added at the top of its section."""
    lines = template.splitlines()
    for dotted, value in settings.items():
        *sections, key = dotted.split(".")
        path: list[str] = []
        found = False
        section_end = -1
        for number, line in enumerate(lines):
            stripped = line.strip()
            if not stripped or stripped.startswith("#") or ":" not in stripped:
                continue
            depth = (len(line) - len(line.lstrip())) // 2
            name = stripped.split(":", 1)[0]
            path = [*path[:depth], name]
            if path == [*sections, key]:
                lines[number] = f"{'  ' * depth}{key}: {value}"
                found = True
                break
            if path == sections:
                section_end = number
        if not found:
            if section_end < 0:
                raise SystemExit(f"milvus_server.py: no section {'.'.join(sections)} in the template for {dotted}")
            lines.insert(section_end + 1, f"{'  ' * len(sections)}{key}: {value}")
    return "\n".join(lines) + "\n"


def main(data_dir: Path, port: int) -> None:
    import milvus

    class MilvusServerConfig(milvus.MilvusServerConfig):  # type: ignore[misc]
        def try_bind_port(self, port: int) -> socket.socket | None:
            """The package's check, with SO_REUSEADDR as Milvus itself binds: after a crash its port is free even
            while closed connections linger (TIME_WAIT)."""
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
            except OSError:
                sock.close()
                return None
            return sock

    data_dir.mkdir(parents=True, exist_ok=True)
    package_template = Path(milvus.__file__).parent / "data" / "config.yaml.template"
    template = data_dir / "milvus.yaml.template"
    template.write_text(with_settings(package_template.read_text(), ERASURE_SETTINGS))
    config = MilvusServerConfig(template=str(template), data_dir=str(data_dir), proxy_port=port)
    config.glog_conf_file = str(package_template.parent / "glog.conf")  # set only for the package's own template
    config.resolve()  # ports for the inner services chosen free now, data folders made, configs/milvus.yaml written
    milvus._initialize_data_files(str(data_dir))  # the binary and its libraries, unpacked into DATA_DIR/bin
    binary = data_dir / "bin" / "milvus"
    print(f"METRICS_PORT={free_port()}")
    print(f"LD_LIBRARY_PATH={binary.parent}")
    print(f"COMMAND={binary} run standalone")


if __name__ == "__main__":
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        raise SystemExit("usage: python deploy/milvus_server.py DATA_DIR PORT")
    main(Path(os.path.abspath(sys.argv[1])), int(sys.argv[2]))
