"""``python -m mvirt.net`` runs the daemon (importing this module runs nothing: the image
builder imports it to collect what the daemon needs)."""

from mvirt.net.daemon import main

if __name__ == "__main__":
    main()
