"""Say where `make demo` will find Fashion-MNIST, before it starts training.

`make demo` runs tools/system_deps.sh first, which installs Debian's dataset-fashion-mnist where it may (root with
apt-get). This script then reports the copy `ddpm-lit train` will read: $DDPM_LIT_DATA, else Debian's
/usr/share/datasets/fashion-mnist; with neither, `ddpm-lit train` tries torchvision's download (ddpm_lit.data.find_data).
"""
import os, sys
from pathlib import Path

DEBIAN = Path('/usr/share/datasets/fashion-mnist')

def main():
    if os.environ.get('DDPM_LIT_DATA'):
        print(f"Fashion-MNIST: using DDPM_LIT_DATA={os.environ['DDPM_LIT_DATA']}"); return
    if any(DEBIAN.glob('train-images-idx3-ubyte*')):
        print(f"Fashion-MNIST: found Debian's copy in {DEBIAN}"); return
    print("Fashion-MNIST: not on disk (sudo apt-get install dataset-fashion-mnist, or set DDPM_LIT_DATA); "
          "`ddpm-lit train` will try torchvision's download", file=sys.stderr)

if __name__ == '__main__':
    main()
