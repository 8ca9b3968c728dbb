"""Double-click entry of Ji XiaoAn: opens the desktop app (``--demo`` replays the bundled demo)."""

import sys


def _run() -> int:
    try:
        from jixiaoan.ui.app import main
    except ImportError as exc:  # PyQt5 or the package itself is missing
        print(f"Ji XiaoAn cannot start: {exc}\nInstall it with: pip install -e .", file=sys.stderr)
        return 1
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(_run())
