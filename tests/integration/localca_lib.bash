# Helpers for the local-ca scripts (sourced after lib.bash, not a test itself).
DRV=$CS_BUILD_DIR/tests/localca_drv

# cnf DIR: a minimal openssl.cnf for `openssl ca` on DIR, written to DIR.cnf.
cnf() {
	cat >"$1.cnf" <<EOC
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = $1
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
certificate = \$dir/cacert.pem
serial = \$dir/serial
crlnumber = \$dir/crlnumber
private_key = \$dir/private/cakey.pem
default_md = default
default_days = 30
default_crl_days = 7
policy = policy_any
copy_extensions = copy
[ policy_any ]
commonName = supplied
EOC
}
osslca() { local d=$1; shift; openssl ca -config "$d.cnf" -batch "$@" 2>"$T/ossl.err" || { cat "$T/ossl.err" >&2; return 1; }; }
# index_ok DIR: every line has six tab-separated fields, V/R/E, an even-length
# uppercase hex serial, "unknown", a /-subject; no serial twice; newcerts present.
index_ok() {
	local d=$1
	if grep -nvP '^(V\t(\d\d)?\d{12}Z\t|[RE]\t(\d\d)?\d{12}Z\t\d{12}Z(,[A-Za-z]+)?)\t([0-9A-F]{2})+\tunknown\t/[^\t]*$' \
		"$d/index.txt" >&2; then
		fail "$d/index.txt has malformed lines"
	fi
	[ -z "$(cut -f4 "$d/index.txt" | sort | uniq -d)" ] || fail "$d/index.txt: duplicate serials"
	cut -f4 "$d/index.txt" | while read -r s; do
		[ -f "$d/newcerts/$s.pem" ] || fail "$d/newcerts/$s.pem missing"
	done
}

