"""What the erasure scrub costs on PostgreSQL: ``scrub_deleted_rows`` (VACUUM FULL of the tables that hold biometric
data, a WAL switch and checkpoints) after erasing one face from a catalog of N faces.

    eval "$(deploy/local-cluster start)"
    python bench/postgres_scrub.py --faces 10000 100000 300000 1000000   # under 2 minutes (bench/README.md)

Each size gets a database of its own (dropped afterwards), filled by SQL with faces of the product's row size
(a 540-byte sealed template each), one face deleted, then the scrub timed.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from facesearch.store.catalog.database import scrub_deleted_rows
from facesearch.store.catalog.store import Catalog

FILL = """
INSERT INTO collections (id, name, purpose, lawful_basis, biometric_condition, retention_days, created_at,
                         wrapped_key, people_allowed, index_generation)
VALUES (1, 'bench', 'bench', 'consent', 'explicit-consent', 30, now(), '\\x00', false, 0);
INSERT INTO images (id, collection_id, content_id, source_path, width, height, format, byte_size, face_count,
                    ingested_at)
VALUES (1, 1, 'c', '/bench', 1, 1, 'png', 1, :faces, now());
INSERT INTO faces (image_id, collection_id, "left", top, "right", bottom, score, landmarks, rotation, sharpness,
                   person_locked, embedder, embedding)
SELECT 1, 1, 0, 0, 10, 10, 1.0, '[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]', 0, 1.0, false,
       'onnx-resnet-4view', convert_to(repeat(md5(n::text), 17), 'UTF8')
FROM generate_series(1, :faces) AS n;
"""


def measure(server_url: str, faces: int) -> dict[str, float]:
    name = f"facesearch_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        Catalog.create(url).close()
        engine = create_engine(url)
        with engine.begin() as connection:
            for statement in FILL.split(";"):
                if statement.strip():
                    connection.execute(text(statement), {"faces": faces})
            connection.execute(text("DELETE FROM faces WHERE id = 1"))
            size = connection.execute(text("SELECT pg_total_relation_size('faces')")).scalar_one()
        started = time.perf_counter()
        scrub_deleted_rows(engine)
        seconds = time.perf_counter() - started
        engine.dispose()
        return {"faces": faces, "faces_table_mb": size / 1e6, "scrub_s": seconds}
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("FACESEARCH_DATABASE_URL", ""), help="a database to admin")
    parser.add_argument("--faces", type=int, nargs="+", default=[100_000])
    args = parser.parse_args()
    if not args.url.startswith("postgresql"):
        parser.error("needs a PostgreSQL URL: --url or FACESEARCH_DATABASE_URL (deploy/local-cluster start)")
    for faces in args.faces:
        result = measure(args.url, faces)
        print(f"{faces:>9} faces  faces table {result['faces_table_mb']:7.1f} MB  scrub {result['scrub_s']:6.2f} s")


if __name__ == "__main__":
    main()
