"""The child process of the selftest: runs cases and writes one JSON line per event.

    python .../gentk/selftest/_child.py PROVIDER OUT START SPEC

PROVIDER is ``module:function``; ``function(**SPEC)`` returns the case list (objects with
``name`` and ``run()``). Cases from index START on are run in order; for each, a
``started`` line is written (and flushed) before it runs and a result line after, so when
a kernel takes the process down the parent knows which case did. Run as a script, not with
``-m``, so that the child imports only what the provider needs.
"""
import importlib
import json
import sys
import time

EXIT_DEVICE_BROKEN = 3  # a case failed and left the device unusable: the parent restarts us


def main(argv):
    provider, out_path, start, spec = argv[0], argv[1], int(argv[2]), json.loads(argv[3])
    module_name, _, attr = provider.partition(":")
    module = importlib.import_module(module_name)
    cases = getattr(module, attr)(**spec)
    healthy = getattr(module, "healthy", lambda: True)
    with open(out_path, "a") as out:
        def write(record):
            out.write(json.dumps(record) + "\n")
            out.flush()

        for index in range(start, len(cases)):
            case = cases[index]
            write({"index": index, "name": case.name, "status": "started"})
            begin = time.perf_counter()
            detail, message = None, None
            try:
                detail = case.run()
                status = "pass"
            except AssertionError as e:
                status, message = "fail", _one_line(str(e)) or "assertion failed"
            except Exception as e:  # a kernel error, reported as the case's result
                status, message = "error", _one_line(f"{type(e).__name__}: {e}")
            write({"index": index, "name": case.name, "status": status, "message": message, "detail": detail,
                   "seconds": round(time.perf_counter() - begin, 4)})
            if status == "error" and not healthy():
                return EXIT_DEVICE_BROKEN
        write({"done": True, "count": len(cases)})
    return 0


def _one_line(text):
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[:3])[:500]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
