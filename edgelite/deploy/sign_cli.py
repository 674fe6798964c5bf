"""`edgelite sign`: sign a bundle's manifest with an OpenSSH key, or check a signed bundle (`--verify`).

argparse and the command only; the signing is `edgelite.signature` (shared with the device agent).
"""

from __future__ import annotations

EXAMPLES = """\
examples:
  ssh-keygen -t ed25519 -f ~/.ssh/edgelite-release -C release-2026      # once: the release key
  edgelite sign bundles/demo --key ~/.ssh/edgelite-release              # writes bundles/demo/edgelite.json.sig
  edgelite sign --verify bundles/demo --allowed-signers trusted_signers
  edgelite deploy bundles/demo --host pi@raspberrypi.local --trust ~/.ssh/edgelite-release.pub

exit codes: 0 ok; 2 usage; 4 a file does not match the manifest; 10 unsigned, signed by a key not trusted, or
            the manifest changed after it was signed
"""


def register(sub) -> None:
    p = sub.add_parser(
        "sign", help="sign a bundle (ssh-keygen -Y sign), or check its signature (--verify)",
        description="Sign a bundle's manifest (edgelite.json, which holds every file's sha256) with an OpenSSH "
                    "private key: the signature goes into the bundle as edgelite.json.sig. A device with a trust "
                    "list (`edgelite deploy --trust KEY.pub`) runs only bundles signed by a key in it.",
        epilog=EXAMPLES)
    p.add_argument("bundle", metavar="BUNDLE", help="bundle directory (edgelite.json)")
    p.add_argument("--key", metavar="KEY", help="OpenSSH private key to sign with (or KEY.pub held by ssh-agent)")
    p.add_argument("--verify", action="store_true",
                   help="check the signature against --allowed-signers and every file against the manifest")
    p.add_argument("--allowed-signers", metavar="FILE",
                   help="with --verify: an OpenSSH allowed-signers file (a device's trusted_signers)")
    p.add_argument("--trust", action="append", metavar="KEY.pub",
                   help="with --verify: trust this public key (instead of, or besides, --allowed-signers)")
    p.set_defaults(func=sign_command)


def sign_command(args) -> int:
    from edgelite.bundle import Bundle
    from edgelite.errors import UsageError
    from edgelite.signature import sign, trust_list, verify_with

    bundle = Bundle.load(args.bundle)  # a malformed manifest: one line, exit 2
    bundle.verify()  # never vouch for (nor accept) files that do not match the manifest: exit 4
    if not args.verify:
        if not args.key or args.allowed_signers or args.trust:
            raise UsageError("`edgelite sign BUNDLE --key KEY` signs; `edgelite sign --verify BUNDLE "
                             "--allowed-signers FILE` checks")
        print(f"signed {bundle.root} with {args.key}: {sign(bundle.root, args.key)}")
        return 0
    if args.key or not (args.allowed_signers or args.trust):
        raise UsageError("--verify checks against a trust list: pass --allowed-signers FILE or --trust KEY.pub")
    principal = verify_with(bundle.root, trust_list(args.trust or (), args.allowed_signers))
    print(f"{bundle.root}: signed by {principal}; every file matches the signed manifest")
    return 0
