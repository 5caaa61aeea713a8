"""Make sure Fashion-MNIST is on disk for `make demo`.

Order: $DDPM_LIT_DATA or Debian's /usr/share/datasets/fashion-mnist if present; else, as root on Debian,
`apt-get install dataset-fashion-mnist`; else nothing here (`ddpm-lit train` then tries torchvision's download).
"""
import os, shutil, subprocess, sys
from pathlib import Path

DEBIAN = Path('/usr/share/datasets/fashion-mnist')

def main():
    if os.environ.get('DDPM_LIT_DATA'):
        print(f"Fashion-MNIST: using DDPM_LIT_DATA={os.environ['DDPM_LIT_DATA']}"); return
    if any(DEBIAN.glob('train-images-idx3-ubyte*')):
        print(f"Fashion-MNIST: found Debian's copy in {DEBIAN}"); return
    if shutil.which('apt-get') and os.geteuid() == 0:
        print("Fashion-MNIST: installing Debian's dataset-fashion-mnist (apt-get)")
        env = {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
        ok = subprocess.run(['apt-get', 'update', '-qq'], env=env).returncode == 0 and \
             subprocess.run(['apt-get', 'install', '-y', '-qq', 'dataset-fashion-mnist'], env=env).returncode == 0
        if ok and any(DEBIAN.glob('train-images-idx3-ubyte*')): return
        print("Fashion-MNIST: apt-get did not provide it", file=sys.stderr)
    print("Fashion-MNIST: not on disk; `ddpm-lit train` will try torchvision's download", file=sys.stderr)

if __name__ == '__main__':
    main()
