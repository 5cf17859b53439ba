"""The zoo needs torchvision, timm, transformers and pytorch-grad-cam; without them it fails
(it does not skip: a zoo that is not run proves nothing). ``scripts/test.sh`` installs them."""
