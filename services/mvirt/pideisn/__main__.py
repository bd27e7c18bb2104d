"""Entry point: `python3 -m mvirt.pideisn` (the image's /init runs this as PID 1)."""

from mvirt.pideisn.init import main

if __name__ == "__main__":
    main()
