"""Create the service's S3 bucket (``TADM_S3_BUCKET``) at ``TADM_S3_ENDPOINT_URL`` if it does not exist yet.

The compose file's ``s3`` profile runs this once before the API and workers start: a fresh S3-compatible server
has no buckets, and the storage backend only reads and writes objects. Credentials are the standard AWS
variables. Exit 0 when the bucket exists afterwards.
"""

import sys
import time


def main() -> int:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from service.config import get_settings

    settings = get_settings()
    client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region)
    # The server may still be starting: retry for up to a minute before giving up.
    for attempt in range(30):
        try:
            client.head_bucket(Bucket=settings.s3_bucket)
            sys.stdout.write(f"bucket {settings.s3_bucket} exists\n")
            return 0
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
            client.create_bucket(Bucket=settings.s3_bucket)
            sys.stdout.write(f"bucket {settings.s3_bucket} created\n")
            return 0
        except BotoCoreError as exc:
            sys.stderr.write(f"waiting for {settings.s3_endpoint_url} ({attempt + 1}/30): {exc}\n")
            time.sleep(2)
    return 1


if __name__ == "__main__":
    sys.exit(main())
