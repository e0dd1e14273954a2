# Two commands: `make demo` and `make test`. Everything else is set-up they call.
PORT ?= 8000
DEMO_DB_PORT ?= 54329
TEST_DB_PORT ?= 54339
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS ?= cpu,train,dev

DEMO_DATABASE_URL := postgis://civic@127.0.0.1:$(DEMO_DB_PORT)/civic
# `DATABASE_URL=postgis://... make test` uses that server instead of the throwaway cluster.
ifdef DATABASE_URL
TEST_DATABASE_URL := $(DATABASE_URL)
TEST_DB_TARGET := system-deps
else
TEST_DATABASE_URL := postgis://civic@127.0.0.1:$(TEST_DB_PORT)/civic
TEST_DB_TARGET := test-db
endif

.PHONY: demo test db db-stop test-db system-deps venv messages cluster

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

venv: $(VENV)/.installed

# The Welsh and English catalogues (locale/*/LC_MESSAGES/django.po) compiled to .mo (not committed).
messages: venv system-deps
	$(PY) manage.py compilemessages --ignore=$(VENV) --ignore=.local -v 0

system-deps:
	bash deploy/dev/system-deps.sh $(if $(filter test,$(MAKECMDGOALS)),--browser)

db: system-deps
	bash deploy/dev/pg.sh start demo $(DEMO_DB_PORT)

db-stop:
	bash deploy/dev/pg.sh stop demo

test-db: system-deps
	bash deploy/dev/pg.sh start test $(TEST_DB_PORT)

demo: venv db messages
	DATABASE_URL=$(DEMO_DATABASE_URL) $(PY) manage.py migrate --noinput
	DATABASE_URL=$(DEMO_DATABASE_URL) $(PY) manage.py createcachetable
	DATABASE_URL=$(DEMO_DATABASE_URL) $(PY) manage.py seed_categories
	@# A throwaway staff login for the local demo only (loopback, local settings).
	DATABASE_URL=$(DEMO_DATABASE_URL) DJANGO_SUPERUSER_PASSWORD=demo $(PY) manage.py createsuperuser \
		--noinput --username demo --email demo@localhost >/dev/null 2>&1 || true
	DATABASE_URL=$(DEMO_DATABASE_URL) $(PY) manage.py setup_roles --user demo --role supervisor >/dev/null
	$(if $(DATASET),DATABASE_URL=$(DEMO_DATABASE_URL) $(PY) manage.py import_labelled_photos $(DATASET) --train)
	@echo "Citizen form: http://127.0.0.1:$(PORT)/report/   Staff console: http://127.0.0.1:$(PORT)/console/ (demo / demo)"
	@echo "Ctrl-C stops the server; the database keeps running (make db-stop)."
	DATABASE_URL=$(DEMO_DATABASE_URL) SITE_URL=http://127.0.0.1:$(PORT) $(PY) manage.py runserver 127.0.0.1:$(PORT)

test: venv $(TEST_DB_TARGET) messages
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest $(PYTEST_ARGS)

# The multi-node run on one machine (deploy/dev/cluster.sh): nginx, two web nodes, three workers,
# PgBouncer and its own PostGIS under a bounded load with kills; about 5 minutes, not part of `make test`.
cluster: EXTRAS := $(EXTRAS),cluster
cluster: venv
	bash deploy/dev/cluster.sh $(CLUSTER_ARGS)
