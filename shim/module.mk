# shim/module.mk - build rules for shim/ (filled in by its owner).
