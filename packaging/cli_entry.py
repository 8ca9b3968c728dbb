"""Entry of the bundled command-line tool (``jixiaoan.exe`` beside ``JiXiaoAn.exe``)."""

import sys

from jixiaoan.cli import main

if __name__ == "__main__":
    sys.exit(main())
