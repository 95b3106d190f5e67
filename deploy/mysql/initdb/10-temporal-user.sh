#!/bin/sh
# Runs once, when the mysql-data volume is first initialised (MySQL's docker-entrypoint-initdb.d):
# the user Temporal connects as, allowed only its two databases (temporalio/auto-setup creates them).
# vmdb's own user and database come from MYSQL_USER/MYSQL_PASSWORD/MYSQL_DATABASE.
# Changing TEMPORAL_MYSQL_PASSWORD later needs an ALTER USER by hand: this does not run again.
: "${TEMPORAL_MYSQL_PASSWORD:?TEMPORAL_MYSQL_PASSWORD is not set}"
MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql --protocol=socket -uroot <<SQL
CREATE USER IF NOT EXISTS 'temporal'@'%' IDENTIFIED BY '${TEMPORAL_MYSQL_PASSWORD}';
GRANT ALL PRIVILEGES ON \`temporal\`.* TO 'temporal'@'%';
GRANT ALL PRIVILEGES ON \`temporal_visibility\`.* TO 'temporal'@'%';
SQL
