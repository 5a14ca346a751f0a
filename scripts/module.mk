# scripts/module.mk - build rules for scripts/ (filled in by its owner).
