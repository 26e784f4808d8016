# A personal layer over the team's dev server flake: your packages, dotfiles, shell and editor
# settings, for your server only. Push this directory to a repository of yours and set
#   ./scripts/pulumi config set devserver:personalFlake 'github:<you>/<repo>?dir=<dir>'
# The host flake imports nixosModules.default after the shared modules and
# homeManagerModules.default into your home-manager configuration (docs/customising.md).
{
  description = "A personal layer over the shared dev server modules (example)";

  # The host flake makes this follow its own nixpkgs, so your packages come from the same one as
  # the rest of the machine; declared here so `nix flake check` works on this flake alone.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, ... }:
    {
      # NixOS: system-wide, on your server only.
      nixosModules.default =
        { pkgs, ... }:
        {
          environment.systemPackages = [
            pkgs.ripgrep
            pkgs.fd
            pkgs.htop
          ];
        };

      # home-manager: your own account (dotfiles in ~ on the persistent /home).
      homeManagerModules.default =
        { pkgs, ... }:
        {
          home.packages = [ pkgs.jq ];
          programs.zsh.shellAliases = {
            ll = "ls -l";
            gs = "git status";
          };
          programs.git.settings.alias = {
            co = "checkout";
            st = "status --short";
          };
          # VS Code Remote-SSH reads the machine's settings from here; managed by home-manager it
          # is read-only in the editor: change it here and `./scripts/up`.
          home.file.".vscode-server/data/Machine/settings.json".text = builtins.toJSON {
            "editor.formatOnSave" = true;
            "files.trimTrailingWhitespace" = true;
            "terminal.integrated.defaultProfile.linux" = "zsh";
          };
        };
    };
}
