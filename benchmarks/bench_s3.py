"""plait-s3 against a local moto S3 server: memory of multipart uploads, and what a flow adds.

Run it with ``.venv/bin/python benchmarks/bench_s3.py`` (``--quick`` for a smaller run; needs
``plugins/plait-s3[test]`` installed, as ``make test`` does). It prints tables and asserts
nothing. The server is moto in its own process, so its memory is not counted and its speed
is not S3's: read the times as relative, the memory as what this process holds.

- upload: ``S3Upload(path=...)`` of one file, 5 MiB parts, at several concurrencies: wall
  time and the peak of Python memory traced during the upload (``tracemalloc``), against
  the file's size: memory follows the number of parts in flight, not the file.
- small objects: N objects of 1 KiB (1,234 by default), uploaded and then downloaded two
  ways in the same run against the same server: plain boto3 (``put_object`` /
  ``get_object``) on a ``ThreadPoolExecutor``, and a flow mapping ``S3Upload`` /
  ``S3Download`` over the keys on Plait's threads executor, each with the default number of
  threads (``min(32, cpus + 4)``, the same for both) and with 8; best of ``--repeat``
  (default 3), the two sides alternating. ``ratio`` is plait / boto3. A serial loop of
  ``put_object`` and of ``S3Upload.run`` shows the cost of one call.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import machine, timed

MiB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (about 10 seconds)")
    parser.add_argument("--objects", type=int, default=None, help="small objects (default 1,234; --quick: 200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best is kept (default 3)")
    args = parser.parse_args()
    file_mib, small = (12, 200) if args.quick else (40, 1_234)
    small = args.objects or small

    import boto3
    import moto
    import plait_s3
    from plait_s3 import S3Download, S3Upload, get_connection
    from plait_s3.testing import moto_s3_server

    from plait import Flow, unmapped
    from plait.config import reset_config
    from plait.executors import ThreadExecutor

    logging.getLogger("plait").setLevel(logging.WARNING)  # log lines would measure the terminal
    print(machine(f"plait-s3 {plait_s3.__version__}", f"boto3 {boto3.__version__}", f"moto {moto.__version__}"))
    print("plait-s3 benchmark")
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
            elapsed = timed(lambda upload=upload: upload.run(path=file, key="big.bin"))
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"{concurrency:>11}  {elapsed:>8.2f}  {peak / MiB:>8.1f}  {peak / file.stat().st_size:>10.0%}")

        print(f"\n{small:,} objects of 1 KiB, best of {args.repeat}")
        print(f"{'how':<24} {'threads':>7}  {'boto3 s':>8}  {'plait s':>8}  {'ratio':>6}  {'plait ms/object':>15}")
        body = b"x" * 1024
        keys = [f"small/{i:05d}" for i in range(small)]
        default_threads = min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's and Plait's default
        for key in keys:  # warm the server up: the first requests of a run are slower
            client.put_object(Bucket="bench", Key=f"warm-{key}", Body=body)

        def put_pool(workers: int) -> None:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(lambda key: client.put_object(Bucket="bench", Key=key, Body=body), keys))

        def get_pool(workers: int) -> None:
            with ThreadPoolExecutor(workers) as pool:
                got = list(pool.map(lambda key: client.get_object(Bucket="bench", Key=key)["Body"].read(), keys))
            assert got[0] == body

        with Flow("bench-upload") as uploads:
            S3Upload(bucket="bench").map(data=unmapped(body), key=keys)
        with Flow("bench-download") as downloads:
            S3Download(bucket="bench").map(key=keys)

        def flow_run(flow: Flow, workers: int) -> None:
            state = flow.run(executor=ThreadExecutor(max_workers=workers))
            if not state.is_successful():
                sys.exit(f"the flow {flow.name} failed: {state}")

        for label, plain, flow in (("upload", put_pool, uploads), ("download", get_pool, downloads)):
            for workers in (default_threads, 8):
                plain_s, plait_s = [], []
                for _ in range(args.repeat):
                    plain_s.append(timed(lambda plain=plain, workers=workers: plain(workers)))
                    plait_s.append(timed(lambda flow=flow, workers=workers: flow_run(flow, workers)))
                best_plain, best_plait = min(plain_s), min(plait_s)
                how = f"{label}: map vs pool"
                print(
                    f"{how:<24} {workers:>7}  {best_plain:>8.2f}  {best_plait:>8.2f}  {best_plait / best_plain:>6.2f}  "
                    f"{best_plait * 1000 / small:>15.2f}",
                    flush=True,
                )

        def put_loop() -> None:
            for key in keys:
                client.put_object(Bucket="bench", Key=key, Body=body)

        upload = S3Upload(bucket="bench")

        def upload_loop() -> None:
            for key in keys:
                upload.run(data=body, key=key)

        loop_s, run_s = timed(put_loop), timed(upload_loop)
        how = "upload: run() vs loop"
        print(f"{how:<24} {1:>7}  {loop_s:>8.2f}  {run_s:>8.2f}  {run_s / loop_s:>6.2f}  {run_s * 1000 / small:>15.2f}")


if __name__ == "__main__":
    main()
