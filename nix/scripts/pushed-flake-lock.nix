# The flake.lock a pushed shared flake (/etc/nixos/shared, pushed without a flake.lock of its own)
# starts from: the `input` subtree of the host flake's lock, re-rooted. With it, re-locking the
# shared input (`nix flake update devserver`) keeps every pin the machine already has and locks only
# inputs that are new or whose reference changed in nix/flake.nix (Nix keeps a locked input whose
# original reference is unchanged; src/libflake/flake.cc, computeLocks). Prints "" when the host
# lock has no such subtree (a first apply): then Nix locks the newest commits.
# Usage (nix eval never calls a file's function itself, so --apply does):
#   nix eval --impure --raw --file pushed-flake-lock.nix --apply 'f: f { lockFile = /etc/nixos/flake.lock; input = "devserver"; }'
{
  lockFile,
  input ? "devserver",
}:
let
  lock = builtins.fromJSON (builtins.readFile lockFile);
  start = lock.nodes.${lock.root}.inputs.${input} or null;
  # Follows paths start at the lock's root (lockfile.cc): inside the subtree they start with the
  # input's name, which goes. One that points elsewhere in the host is dropped, and Nix does NOT
  # lock it again: a kept node gets only the inputs its old lock names (computeLocks' fakeInputs,
  # src/libflake/flake.cc @ 88b09c64). The host flake never overrides devserver's inputs, so
  # no such follows exists today.
  rewrite =
    inputs:
    builtins.listToAttrs (
      builtins.concatMap (
        name:
        let
          value = inputs.${name};
        in
        if builtins.isString value then
          [ { inherit name value; } ]
        else if builtins.length value > 1 && builtins.head value == input then
          [
            {
              inherit name;
              value = builtins.tail value;
            }
          ]
        else
          [ ]
      ) (builtins.attrNames inputs)
    );
  withInputs = node: if node ? inputs then node // { inputs = rewrite node.inputs; } else node;
  children = node: builtins.filter builtins.isString (builtins.attrValues (node.inputs or { }));
  reachable = builtins.genericClosure {
    startSet = map (key: { inherit key; }) (children lock.nodes.${start});
    operator = item: map (key: { inherit key; }) (children lock.nodes.${item.key});
  };
  nodes = builtins.listToAttrs (
    map (item: {
      name = item.key;
      value = withInputs lock.nodes.${item.key};
    }) reachable
  );
in
if !(builtins.isString start) || nodes ? root then
  ""
else
  builtins.toJSON {
    inherit (lock) version;
    root = "root";
    nodes = nodes // {
      root.inputs = rewrite (lock.nodes.${start}.inputs or { });
    };
  }
