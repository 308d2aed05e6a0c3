"""Writes ~N MB of real text for tokenizer benchmarks from files every Debian machine has:
license prose (/usr/share/common-licenses, /usr/share/doc/*/copyright) and Python source
(code). Sorted walk, so the same machine gives the same bytes."""
import glob, sys

out, target = sys.argv[1], int(float(sys.argv[2]) * 1e6) if len(sys.argv) > 2 else 10_000_000
prose = sorted(glob.glob("/usr/share/common-licenses/*")) + sorted(glob.glob("/usr/share/doc/*/copyright"))
code = sorted(glob.glob("/usr/lib/python3*/**/*.py", recursive=True))
parts, size = [], 0
for group in (prose, code):
    for path in group:
        try:
            text = open(path, encoding="utf-8").read()
        except (UnicodeDecodeError, OSError):
            continue
        parts.append(text)
        size += len(text.encode())
        if size >= (target // 2 if group is prose else target):
            break
with open(out, "w", encoding="utf-8") as f:
    f.write("".join(parts)[: target])
