"""`python train.py --config configs/X.yaml [key=value ...]`: the same as `cnnzoo train ...`."""

import sys

from cnnzoo.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
