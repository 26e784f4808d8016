# Stand-in for nixpkgs' Amazon image module in the nixpkgs-free module evaluation (eval-modules.nix).
{ }
