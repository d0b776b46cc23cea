"""Container health probe: exit 0 when the URL answers 2xx within the timeout, else 1.

The slim images have no curl or wget; this needs only the standard library. Usage: healthcheck.py URL [TIMEOUT_S]
"""

import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write("usage: healthcheck.py URL [TIMEOUT_S]\n")
        return 2
    url = argv[0]
    timeout = float(argv[1]) if len(argv) > 1 else 2.0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 0 if 200 <= response.status < 300 else 1
    except (urllib.error.URLError, OSError) as exc:
        sys.stderr.write(f"{url}: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
