"""The one way to reach a device: SSH target parsing, the ssh/rsync/scp calls, host-key policy."""
