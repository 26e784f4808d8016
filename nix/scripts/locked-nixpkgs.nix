# The flake reference of the nixpkgs a host flake's flake.lock pins for its `nixpkgs` input
# (following `follows` paths such as [ "devserver" "nixpkgs" ]). apply-flake.sh builds awscli2 from it,
# so the token fetch uses the host's own pinned nixpkgs, never the global registry's.
# Usage (nix eval never calls a file's function itself, so --apply does):
#   nix eval --impure --raw --file locked-nixpkgs.nix --apply 'f: f { lockFile = /etc/nixos/flake.lock; }'
{ lockFile }:
let
  lock = builtins.fromJSON (builtins.readFile lockFile);
  # An input is a node name, or a follows path that always starts at the root node.
  resolve = input: if builtins.isList input then follow lock.root input else input;
  follow =
    node: path:
    if path == [ ] then
      node
    else
      follow (resolve lock.nodes.${node}.inputs.${builtins.head path}) (builtins.tail path);
  locked = lock.nodes.${resolve lock.nodes.${lock.root}.inputs.nixpkgs}.locked;
in
if locked.type == "github" then
  "github:${locked.owner}/${locked.repo}/${locked.rev}"
else if locked.type == "tarball" || locked.type == "file" then
  "${locked.url}"
else
  throw "flake.lock pins nixpkgs as a '${locked.type}' input; expected github or tarball"
