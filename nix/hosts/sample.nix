# A fake host for `nix flake check`: every devserver.* value a rendered host flake sets, all obviously fake.
{
  networking.hostName = "devserver-sample";
  system.stateVersion = "26.05";
  devserver = {
    user = {
      name = "alice";
      fullName = "Alice Example";
      email = "alice@example.com";
    };
    githubUser = "octocat";
    homeVolume.device = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0";
    # What the host template takes from machine.json; an obviously fake key.
    deploy.rootAuthorizedKeys = [
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeDeployKeyForTheSampleHostOnly devserver-deploy"
    ];
    token = {
      secretId = "devserver/sample/devserver-sample/github-token";
      region = "eu-west-1";
    };
    idleStop.minutes = 60;
  };
}
