# Thin entry points; the work is in scripts/ so README, Makefile and CI run the same thing.
.PHONY: setup deploy verify status test lint pytest molecule bench local-destroy

setup:          ## install packages, the pinned toolchain and test collections
	bash scripts/setup.sh

deploy:         ## deploy the whole stack to the local container wsnotify-local
	bash scripts/deploy-local.sh

verify:         ## run the post-deploy checks against the local container
	bash -c 'source scripts/lib.sh && ansible-playbook playbooks/verify.yml'

status:         ## one table per host of the local container's stack; non-zero naming what is wrong
	bash -c 'source scripts/lib.sh && ansible-playbook playbooks/status.yml'

test:           ## lint + pytest + benchmark smoke + every Molecule scenario
	bash scripts/test.sh

lint:
	bash scripts/lint.sh

pytest:
	bash -c 'source scripts/lib.sh && pytest'

molecule:
	bash scripts/test-molecule.sh

bench:          ## full benchmarks (about 10 minutes), JSON + table under bench/results/
	bash -c 'source scripts/lib.sh && python bench/run.py'

local-destroy:  ## remove the local container (the next deploy starts from a bare host)
	bash -c 'source scripts/lib.sh && podman rm -f -t 5 wsnotify-local'
