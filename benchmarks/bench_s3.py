"""plait-s3 against a local moto S3 server: memory of multipart uploads, and what a flow adds.

Run it with ``.venv/bin/python benchmarks/bench_s3.py`` (``--quick`` for a smaller run; needs
``plugins/plait-s3[test]`` installed, as ``make test`` does). It prints tables and asserts
nothing. The server is moto in its own process, so its memory is not counted and its speed
is not S3's: read the times as relative, the memory as what this process holds.

- upload: ``S3Upload(path=...)`` of one file, 5 MiB parts, at several concurrencies: wall
  time and the peak of Python memory traced during the upload (``tracemalloc``), against
  the file's size: memory follows the number of parts in flight, not the file.
- small objects: N uploads of 1 KiB, done by a plain loop over one boto3 client, by
  ``S3Upload.run`` in the same loop, and by a flow mapping ``S3Upload`` (threads executor).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

MiB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (about 10 seconds)")
    args = parser.parse_args()
    file_mib, small = (12, 100) if args.quick else (40, 400)

    import boto3
    import moto
    import plait_s3
    from plait_s3 import S3Upload, get_connection
    from plait_s3.testing import moto_s3_server

    import plait
    from plait import Flow, unmapped
    from plait.config import reset_config

    print(f"plait-s3 benchmark: Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    versions = f"plait {plait.__version__}, plait-s3 {plait_s3.__version__}, boto3 {boto3.__version__}"
    print(f"{versions}, moto {moto.__version__}")
    with tempfile.TemporaryDirectory() as tmp, moto_s3_server(log_dir=tmp) as endpoint:
        os.environ.update(
            PLAIT__PLUGINS__S3__ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="AKIABENCHMARKKEY0000",
            AWS_SECRET_ACCESS_KEY="benchmark-secret-key-for-moto-only-0000",
            AWS_DEFAULT_REGION="us-east-1",
        )
        reset_config()
        plait_s3.clear_clients()
        client = get_connection().client
        client.create_bucket(Bucket="bench")

        file = Path(tmp) / "big.bin"
        with open(file, "wb") as fh:
            for _ in range(file_mib):
                fh.write(os.urandom(MiB))
        print(f"\nupload of a {file_mib} MiB file in 5 MiB parts")
        print(f"{'concurrency':>11}  {'seconds':>8}  {'peak MiB':>8}  {'peak / file':>11}")
        for concurrency in (1, 2, 4, 10):
            upload = S3Upload(
                bucket="bench",
                config={"multipart_threshold": 5 * MiB, "multipart_chunksize": 5 * MiB, "max_concurrency": concurrency},
            )
            upload.run(data=b"warm", key="warm")  # the client and its models are made outside the measure
            tracemalloc.start()
            start = time.perf_counter()
            upload.run(path=file, key="big.bin")
            elapsed = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"{concurrency:>11}  {elapsed:>8.2f}  {peak / MiB:>8.1f}  {peak / file.stat().st_size:>10.0%}")

        print(f"\n{small} uploads of 1 KiB")
        print(f"{'how':<34}  {'seconds':>8}  {'ms / object':>11}")
        body = b"x" * 1024
        keys = [f"small/{i:05d}" for i in range(small)]

        def report(label: str, seconds: float) -> None:
            print(f"{label:<34}  {seconds:>8.2f}  {seconds * 1000 / small:>11.2f}")

        for key in keys:  # warm the server up: the first requests of a run are slower
            client.put_object(Bucket="bench", Key=f"warm-{key}", Body=body)
        start = time.perf_counter()
        for key in keys:
            client.put_object(Bucket="bench", Key=key, Body=body)
        report("boto3 put_object loop", time.perf_counter() - start)

        upload = S3Upload(bucket="bench")
        start = time.perf_counter()
        for key in keys:
            upload.run(data=body, key=key)
        report("S3Upload.run loop", time.perf_counter() - start)

        with Flow("bench-small") as flow:
            S3Upload().map(data=unmapped(body), key=keys, bucket=unmapped("bench"))
        start = time.perf_counter()
        state = flow.run(executor="threads")
        report("flow: S3Upload.map, threads", time.perf_counter() - start)
        if not state.is_successful():
            sys.exit(f"the flow failed: {state}")


if __name__ == "__main__":
    main()
