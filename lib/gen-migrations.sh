#!/bin/sh
# Compile sql/NNNN-name.sql files into a C table, so that an installed parlae can migrate.
# Usage: gen-migrations.sh sql/0001-core.sql ... > migrations.c
set -e
echo '/* Generated from sql/ by lib/gen-migrations.sh: do not edit. */'
echo '#include "db.h"'
for f; do
	base=${f##*/}
	ver=${base%%-*}
	echo "static const char sql_$ver[] ="
	awk '{ gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); gsub(/\t/, "\\t"); printf "\t\"%s\\n\"\n", $0 }' "$f"
	echo ";"
done
echo 'static const struct pl_migration all[] = {'
for f; do
	base=${f##*/}
	ver=${base%%-*}
	name=${base#*-}
	name=${name%.sql}
	echo "	{$(expr "$ver" + 0), \"$name\", sql_$ver},"
done
echo '};'
echo 'const struct pl_migration *pl_db_migrations(size_t *n)'
echo '{'
echo '	*n = sizeof(all) / sizeof(all[0]);'
echo '	return all;'
echo '}'
