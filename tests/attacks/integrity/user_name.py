# The sandbox uid has no passwd entry; torchvision.datasets (torch 2.11) and other code ask
# for the user name at import, which must work (found on the GPU machine, docs/gpu.md).
import getpass
assert getpass.getuser()
