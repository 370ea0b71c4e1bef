# Source me: the environment every project command runs in (engine on PATH, offline Pulumi).
# Builds the engine on first use (see engine/build.sh).
_tb_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_tb_engine=$("$_tb_root/engine/build.sh")
export PULUMI_TESTBED_ROOT="$_tb_root"
export PATH="$_tb_engine:$_tb_root/.venv/bin:$PATH"
# Offline: no update checks, never download plugins (a missing one fails fast instead).
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
# Examples use the checkout's plugin (Pulumi.yaml plugins.providers), not one found on $PATH.
export PULUMI_IGNORE_AMBIENT_PLUGINS=true
# The language host runs programs with the project's virtualenv unless a project names its own.
export PULUMI_PYTHON_CMD="${PULUMI_PYTHON_CMD:-$_tb_root/.venv/bin/python}"
# `ansible -i <stack>.testbed.yml` finds the testbed CLI's inventory plugin (`testbed inventory
# --plugin-file`); Ansible's default plugin directories are kept, and sourcing twice adds it once.
_tb_inv="$_tb_root/provider/testbed_provider/cli/ansible_plugins/inventory"
case ":${ANSIBLE_INVENTORY_PLUGINS:-}:" in
  *":$_tb_inv:"*) ;;
  *) export ANSIBLE_INVENTORY_PLUGINS="$_tb_inv:${ANSIBLE_INVENTORY_PLUGINS:-$HOME/.ansible/plugins/inventory:/usr/share/ansible/plugins/inventory}" ;;
esac
unset _tb_root _tb_engine _tb_inv
