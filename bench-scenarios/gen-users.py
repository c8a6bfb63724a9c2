#!/usr/bin/env python3
"""Writes a sipp injection file (user;password;domain;auth keyword) and the matching
[[proxy.user_backends]] TOML snippet for N users.

usage: gen-users.py N DOMAIN CSV_OUT TOML_OUT [--wrong-password]
"""
import sys


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    n, domain, csv_out, toml_out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    wrong = "--wrong-password" in sys.argv[5:]
    users = [(f"u{i:06d}", f"pw{i:06d}x") for i in range(n)]
    with open(csv_out, "w") as f:
        f.write("SEQUENTIAL\n")
        for u, p in users:
            pw = p + "bad" if wrong else p
            f.write(f"{u};{pw};{domain};[authentication username={u} password={pw}]\n")
    with open(toml_out, "w") as f:
        f.write('[[proxy.user_backends]]\ntype = "memory"\nusers = [\n')
        for u, p in users:
            f.write(f'  {{ username = "{u}", password = "{p}" }},\n')
        f.write("]\n")


if __name__ == "__main__":
    main()
