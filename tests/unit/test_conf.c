/*
 * test_conf.c - sluice.conf loading: defaults, every group read back,
 * exact boundaries accepted, and a table of broken files, each checked
 * for its one-line "FILE:LINE: key: ..." message.  Files are written to
 * mkstemp() names, so the expected prefix is known exactly.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "conf.h"
#include "log.h"

#define BASE	"listen = ( { address = \"127.0.0.1\"; port = 2587; } );\n"
#define EXAMPLE	"etc/sluice.conf.example"

struct conf_file {
	char	 path[64];
};

struct bad_case {
	const char	*name;
	const char	*text;
	int		 line;
	const char	*msg;		/* expected after "FILE:LINE: " */
};

static void		 file_write(struct conf_file *, const char *);
static struct conf	*load_text(const char *, struct conf_file *, char *,
			    size_t);
static struct conf	*load_ok(const char *);
static void		 expect_error(const struct bad_case *);
static int		 image_of(const struct conf *);
static void		 assert_str_or_null(const char *, const char *);
static void		 assert_conf_equal(const struct conf *,
			    const struct conf *);

/* The CONFIG.md example, listeners and all. */
static const char full_text[] =
    "hostname  = \"mail.example.org\";\n"
    "state_dir = \"/var/lib/sluice\";\n"
    "pid_file = \"/run/sluice/sluiced.pid\";\n"
    "smtpd_processes = 3;\n"
    "listen = (\n"
    "  { address = \"0.0.0.0\"; port = 587; tls = \"starttls\"; "
    "auth = \"required\"; },\n"
    "  { address = \"::\";      port = 465; tls = \"implicit\"; "
    "auth = \"required\"; },\n"
    "  { address = \"10.0.0.5\"; port = 25; tls = \"starttls\"; "
    "auth = \"optional\";\n"
    "    trusted_networks = [ \"10.0.0.0/8\", \"2001:db8::/32\" ]; }\n"
    ");\n"
    "tls = { certificate = \"/etc/sluice/fullchain.pem\"; "
    "key = \"/etc/sluice/privkey.pem\";\n"
    "        min_version = \"TLSv1.3\";\n"
    "        ca_file = \"/etc/ssl/certs/ca-certificates.crt\"; };\n"
    "redis = { address = \"127.0.0.1:6379\"; "
    "password_file = \"/etc/sluice/redis.pass\"; prefix = \"mx1:\"; "
    "durability = \"relaxed\"; };\n"
    "limits = { message_size = \"35M\"; recipients = 100;\n"
    "           connections = 2000; connections_per_ip = 20;\n"
    "           errors = 10;\n"
    "           auth_failures = 5; auth_block = \"15m\";\n"
    "           user_messages_per_hour = 1000;\n"
    "           user_recipients_per_hour = 5000; };\n"
    "timeouts = { command = \"5m\"; data_block = \"3m\"; "
    "data_end = \"10m\";\n"
    "             connect = \"30s\"; upstream_command = \"5m\"; };\n"
    "queue = { lifetime = \"5d\"; retry_min = \"1m\"; retry_max = \"1h\"; "
    "lease = \"90s\"; delay_warning = \"4h\"; "
    "key_file = \"/etc/sluice/queue.key\"; };\n"
    "delivery = {\n"
    "  workers = 6;\n"
    "  routes = (\n"
    "    { domains = [ \"Partner.Example\", \"*.partner.example\" ]; "
    "smarthost = \"relay.partner.example:25\"; tls = \"may\"; },\n"
    "    { domains = [ \"*\" ]; smarthost = \"smtp.provider.net:587\"; "
    "tls = \"verify\";\n"
    "      auth_user = \"org-relay\"; "
    "auth_password_file = \"/etc/sluice/upstream.pass\";\n"
    "      rate = \"20/s\"; concurrency = 8; helo = \"out.example.org\"; }\n"
    "  );\n"
    "};\n"
    "dns = { servers = [ \"127.0.0.1:5353\", \"[::1]:53\",\n"
    "  \"192.0.2.53\" ]; };\n"
    "users = { smtpd = \"s-smtpd\"; authd = \"s-authd\"; queued = \"s_q\";\n"
    "          deliverd = \"s-deliverd\"; redis = \"redis\"; };\n"
    "metrics = { listen = \"[::1]:9100\"; };\n";

static const struct bad_case bad_cases[] = {
	/* unknown keys, in every group */
	{ "unknown top", BASE "colour = \"blue\";", 2, "colour: unknown key" },
	{ "unknown limits", BASE "limits = { colour = 1; };", 2,
	    "limits.colour: unknown key" },
	{ "unknown listen", "listen = ( { address = \"127.0.0.1\"; "
	    "port = 25;\n colour = 1; } );", 2,
	    "listen.[0].colour: unknown key" },
	{ "unknown tls", BASE "tls = { cert = \"/x\"; };", 2,
	    "tls.cert: unknown key" },
	{ "unknown redis", BASE "redis = { host = \"x\"; };", 2,
	    "redis.host: unknown key" },
	{ "unknown timeouts", BASE "timeouts = { data = 5; };", 2,
	    "timeouts.data: unknown key" },
	{ "unknown queue", BASE "queue = { retry = 5; };", 2,
	    "queue.retry: unknown key" },
	{ "unknown delivery", BASE "delivery = { worker = 5; };", 2,
	    "delivery.worker: unknown key" },
	{ "unknown route", BASE "delivery = { routes = (\n"
	    "{ domains = [ \"*\" ]; mx = true; },\n"
	    "{ domains = [ \"*\" ]; mx = true; port = 25; } ); };", 4,
	    "delivery.routes.[1].port: unknown key" },
	{ "unknown dns", BASE "dns = { server = [ \"1.2.3.4\" ]; };", 2,
	    "dns.server: unknown key" },
	{ "unknown users", BASE "users = { sluiced = \"x\"; };", 2,
	    "users.sluiced: unknown key" },

	/* wrong types */
	{ "int as string", BASE "limits = { recipients = \"many\"; };", 2,
	    "limits.recipients: must be an integer" },
	{ "int as float", "listen = ( { address = \"127.0.0.1\"; "
	    "port = 25.0; } );", 1, "listen.[0].port: must be an integer" },
	{ "string as int", BASE "hostname = 5;", 2,
	    "hostname: must be a string" },
	{ "bool as string", BASE "redis = { embedded = \"yes\"; };", 2,
	    "redis.embedded: must be true or false" },
	{ "group as int", BASE "limits = 5;", 2, "limits: must be a group" },
	{ "list as group", "listen = { address = \"127.0.0.1\"; "
	    "port = 25; };", 1, "listen: must be a list" },
	{ "size as bool", BASE "limits = { message_size = true; };", 2,
	    "limits.message_size: must be a size" },
	{ "duration as float", BASE "queue = { lifetime = 1.5; };", 2,
	    "queue.lifetime: must be a duration" },
	{ "enum as int", "listen = ( { address = \"127.0.0.1\"; port = 25; "
	    "tls = 1; } );", 1, "listen.[0].tls: must be a string: "
	    "\"starttls\", \"implicit\" or \"none\"" },
	{ "array as string", "listen = ( { address = \"127.0.0.1\"; "
	    "port = 25; trusted_networks = \"10.0.0.0/8\"; } );", 1,
	    "listen.[0].trusted_networks: must be an array of strings, "
	    "such as [ \"10.0.0.0/8\" ]" },
	{ "array element", "listen = ( { address = \"127.0.0.1\"; port = 25;\n"
	    "trusted_networks = [ 10 ]; } );", 2,
	    "listen.[0].trusted_networks.[0]: must be a string" },
	{ "listener not a group", "listen = ( \"127.0.0.1:25\" );", 1,
	    "listen.[0]: must be a group" },

	/* ranges */
	{ "port 0", "listen = ( { address = \"127.0.0.1\"; port = 0; } );", 1,
	    "listen.[0].port: 0 is out of range (1..65535)" },
	{ "port 65536", "listen = ( { address = \"127.0.0.1\"; "
	    "port = 65536; } );", 1,
	    "listen.[0].port: 65536 is out of range (1..65535)" },
	{ "port 70000 second", "listen = (\n"
	    "{ address = \"127.0.0.1\"; port = 25; },\n"
	    "{ address = \"127.0.0.1\"; port = 70000; } );", 3,
	    "listen.[1].port: 70000 is out of range (1..65535)" },
	{ "port negative", "listen = ( { address = \"127.0.0.1\"; "
	    "port = -25; } );", 1,
	    "listen.[0].port: -25 is out of range (1..65535)" },
	{ "port int64", "listen = ( { address = \"127.0.0.1\"; "
	    "port = 4294967297L; } );", 1,
	    "listen.[0].port: 4294967297 is out of range (1..65535)" },
	{ "port truncated by libconfig", "listen = ( { address = "
	    "\"127.0.0.1\";\n  port = 4294967297; } );", 2,
	    "listen.[0].port: 4294967297 does not fit in a 32-bit integer" },
	{ "hex truncated", BASE "limits = { recipients = 0x100000000; };", 2,
	    "limits.recipients: 0x100000000 does not fit" },
	{ "processes 257", BASE "smtpd_processes = 257;", 2,
	    "smtpd_processes: 257 is out of range (0..256)" },
	{ "processes -1", BASE "smtpd_processes = -1;", 2,
	    "smtpd_processes: -1 is out of range (0..256)" },
	{ "workers 0", BASE "delivery = { workers = 0; };", 2,
	    "delivery.workers: 0 is out of range (1..256)" },
	{ "size too big", BASE "limits = { message_size = \"3G\"; };", 2,
	    "limits.message_size: \"3G\" is out of range (1K..500M)" },
	{ "size one over", BASE "limits = { message_size = 524288001L; };", 2,
	    "limits.message_size: 524288001 is out of range (1K..500M)" },
	{ "size too small", BASE "limits = { message_size = 1023; };", 2,
	    "limits.message_size: 1023 is out of range (1K..500M)" },
	{ "duration zero", BASE "timeouts = { command = \"0s\"; };", 2,
	    "timeouts.command: \"0s\" is out of range (1s..1d)" },
	{ "duration one over", BASE "timeouts = { connect = 86401; };", 2,
	    "timeouts.connect: 86401 is out of range (1s..1d)" },
	{ "per ip over total", BASE "limits = { connections = 10;\n"
	    "connections_per_ip = 11; };", 3, "limits.connections_per_ip: "
	    "11 is more than limits.connections (10)" },

	/* sizes and durations */
	{ "size suffix", BASE "limits = { message_size = \"35Q\"; };", 2,
	    "limits.message_size: invalid size \"35Q\" "
	    "(use a number with K, M or G)" },
	{ "size space", BASE "limits = { message_size = \"35 M\"; };", 2,
	    "limits.message_size: invalid size \"35 M\"" },
	{ "size sign", BASE "limits = { message_size = \"-1M\"; };", 2,
	    "limits.message_size: invalid size \"-1M\"" },
	{ "size empty", BASE "limits = { message_size = \"\"; };", 2,
	    "limits.message_size: invalid size \"\"" },
	{ "size overflow", BASE "limits = { message_size = "
	    "\"99999999999G\"; };", 2,
	    "limits.message_size: \"99999999999G\" is too large" },
	{ "duration suffix", BASE "queue = { lifetime = \"5 days\"; };", 2,
	    "queue.lifetime: invalid duration \"5 days\" "
	    "(use a number with s, m, h or d)" },
	{ "duration week", BASE "limits = { auth_block = \"1w\"; };", 2,
	    "limits.auth_block: invalid duration \"1w\"" },
	{ "rate", BASE "delivery = { routes = ( { domains = [ \"*\" ]; "
	    "mx = true;\n rate = \"20/w\"; } ); };", 3,
	    "delivery.routes.[0].rate: invalid rate \"20/w\"" },

	/* addresses and networks */
	{ "address name", "listen = ( { address = \"localhost\"; "
	    "port = 25; } );", 1, "listen.[0].address: \"localhost\" is not "
	    "a numeric IPv4 or IPv6 address" },
	{ "cidr prefix", "listen = ( { address = \"127.0.0.1\"; port = 25;\n"
	    "  trusted_networks = [ \"10.0.0.0/8\",\n"
	    "  \"10.0.0.0/33\" ]; } );", 3,
	    "listen.[0].trusted_networks.[1]: \"10.0.0.0/33\" is not a "
	    "network: the prefix length must be 0..32" },
	{ "cidr host bits", "listen = ( { address = \"::1\"; port = 25;\n"
	    "  trusted_networks = [ \"10.0.0.1/8\" ]; } );", 2,
	    "listen.[0].trusted_networks.[0]: \"10.0.0.1/8\" has host bits "
	    "set below the prefix length" },
	{ "cidr address", "listen = ( { address = \"::1\"; port = 25;\n"
	    "  trusted_networks = [ \"10.0.0/8\" ]; } );", 2,
	    "listen.[0].trusted_networks.[0]: \"10.0.0/8\" is not a network: "
	    "the address" },
	{ "cidr empty array", "listen = ( { address = \"::1\"; port = 25;\n"
	    "  trusted_networks = [ ]; } );", 2,
	    "listen.[0].trusted_networks: must not be empty" },
	{ "smarthost port", BASE "delivery = { routes = (\n"
	    "  { domains = [ \"*\" ]; smarthost = \"relay.example:99999\"; } "
	    "); };", 3, "delivery.routes.[0].smarthost: "
	    "\"relay.example:99999\" is not \"host:port\"" },
	{ "smarthost no port", BASE "delivery = { routes = (\n"
	    "  { domains = [ \"*\" ]; smarthost = \"relay.example\"; } ); };",
	    3, "delivery.routes.[0].smarthost: \"relay.example\" is not" },
	{ "redis address port 0", BASE "redis = { address = "
	    "\"localhost:0\"; };", 2,
	    "redis.address: \"localhost:0\" is not \"host:port\"" },
	{ "redis host name", BASE "redis = { address = "
	    "\"redis.example:6379\"; };", 2,
	    "redis.address: \"redis.example:6379\": give the server's IP "
	    "address, not a host name" },
	{ "redis unix relative", BASE "redis = { address = "
	    "\"unix:redis.sock\"; };", 2,
	    "redis.address: \"unix:redis.sock\": the socket must be an "
	    "absolute path" },
	{ "dns name", BASE "dns = { servers = [ \"ns.example:53\" ]; };", 2,
	    "dns.servers.[0]: \"ns.example:53\" is not \"ip:port\"" },
	{ "duplicate listener", "listen = (\n"
	    "  { address = \"::1\"; port = 587; },\n"
	    "  { address = \"::1\"; port = 465; },\n"
	    "  { address = \"::1\"; port = 587; tls = \"none\"; } );", 4,
	    "listen.[2]: ::1 port 587 is already used by the listener on "
	    "line 2" },

	/* required keys, and keys that go together */
	{ "no listen", "hostname = \"mail.example.org\";", 1,
	    "listen: at least one listener is required" },
	{ "empty listen", "\nlisten = ( );", 2,
	    "listen: at least one listener is required" },
	{ "no port", "listen = (\n  { address = \"127.0.0.1\"; } );", 2,
	    "listen.[0].port: required, but not set" },
	{ "no address", "listen = ( { port = 25; } );", 1,
	    "listen.[0].address: required, but not set" },
	{ "no domains", BASE "delivery = { routes = (\n"
	    "  { mx = true; } ); };", 3,
	    "delivery.routes.[0].domains: required, but not set" },
	{ "empty domains", BASE "delivery = { routes = (\n"
	    "  { domains = [ ]; mx = true; } ); };", 3,
	    "delivery.routes.[0].domains: must not be empty" },
	{ "bad domain", BASE "delivery = { routes = (\n"
	    "  { domains = [ \"a..b\" ]; mx = true; } ); };", 3,
	    "delivery.routes.[0].domains.[0]: \"a..b\" is not" },
	{ "empty domain", BASE "delivery = { routes = (\n"
	    "  { domains = [ \"\" ]; mx = true; } ); };", 3,
	    "delivery.routes.[0].domains.[0]: \"\" is not" },
	{ "no routes", BASE "delivery = { routes = ( ); };", 2,
	    "delivery.routes: at least one route is required" },
	{ "embedded and address", BASE "redis = {\n embedded = true;\n"
	    " address = \"127.0.0.1:6379\"; };", 3,
	    "redis.embedded: cannot be true together with redis.address" },
	{ "not embedded, no address", BASE "redis = { embedded = false; };",
	    2, "redis.address: required when embedded = false" },
	{ "embedded password", BASE "redis = {\n"
	    " password_file = \"/etc/sluice/redis.pass\"; };", 3,
	    "redis.password_file: only for a server given by redis.address" },
	{ "smarthost and mx", BASE "delivery = { routes = (\n"
	    "  { domains = [ \"*\" ]; smarthost = \"relay.example:25\";\n"
	    "    mx = true; } ); };", 4,
	    "delivery.routes.[0].mx: cannot be true together with smarthost" },
	{ "neither smarthost nor mx", BASE "delivery = { routes = (\n"
	    "  { domains = [ \"*\" ]; } ); };", 3,
	    "delivery.routes.[0]: needs either smarthost" },
	{ "auth user alone", BASE "delivery = { routes = (\n"
	    "  { domains = [ \"*\" ]; smarthost = \"relay.example:587\";\n"
	    "    auth_user = \"u\"; } ); };", 3,
	    "delivery.routes.[0].auth_password_file: required when auth_user "
	    "is set" },
	{ "auth password alone", BASE "delivery = { routes = (\n"
	    "  { domains = [ \"*\" ]; smarthost = \"relay.example:587\";\n"
	    "    auth_password_file = \"/p\"; } ); };", 3,
	    "delivery.routes.[0].auth_user: required when auth_password_file "
	    "is set" },
	{ "mx with auth", BASE "delivery = { routes = (\n"
	    "  { domains = [ \"*\" ]; mx = true; auth_user = \"u\";\n"
	    "    auth_password_file = \"/p\"; } ); };", 3,
	    "delivery.routes.[0].auth_user: only with a smarthost" },
	{ "mx implicit", BASE "delivery = { routes = (\n"
	    "  { domains = [ \"*\" ]; mx = true;\n tls = \"implicit\"; } ); };",
	    4, "delivery.routes.[0].tls: \"implicit\" only with a smarthost" },
	{ "certificate alone", BASE "tls = {\n"
	    "  certificate = \"/etc/sluice/c.pem\"; };", 2,
	    "tls.key: required when tls.certificate is set" },
	{ "key alone", BASE "tls = {\n"
	    "  key = \"/etc/sluice/k.pem\"; };", 2,
	    "tls.certificate: required when tls.key is set" },
	{ "retry_min > retry_max", BASE "queue = { retry_min = \"2h\";\n"
	    "  retry_max = \"1h\"; };", 2,
	    "queue.retry_min: 2h is more than queue.retry_max (1h)" },
	{ "retry_max > lifetime", BASE "queue = { lifetime = \"1h\";\n"
	    "  retry_max = \"2h\"; };", 3,
	    "queue.retry_max: 2h is more than queue.lifetime (1h)" },

	/* queue.lease, queue.delay_warning, queue.key_file, durability */
	{ "lifetime zero", BASE "queue = { lifetime = 0; };", 2,
	    "queue.lifetime: 0 is out of range (1s..30d)" },
	{ "lifetime one over", BASE "queue = { lifetime = \"2592001\"; };", 2,
	    "queue.lifetime: \"2592001\" is out of range (1s..30d)" },
	{ "lease zero", BASE "queue = {\n  lease = \"0s\"; };", 3,
	    "queue.lease: \"0s\" is out of range (1s..1d)" },
	{ "lease one over", BASE "queue = { lease = 86401; };", 2,
	    "queue.lease: 86401 is out of range (1s..1d)" },
	{ "lease suffix", BASE "queue = { lease = \"1w\"; };", 2,
	    "queue.lease: invalid duration \"1w\" "
	    "(use a number with s, m, h or d)" },
	{ "lease as bool", BASE "queue = { lease = true; };", 2,
	    "queue.lease: must be a duration" },
	{ "delay_warning one over", BASE "queue = {\n"
	    "  delay_warning = 2592001; };", 3,
	    "queue.delay_warning: 2592001 is out of range (0s..30d)" },
	{ "delay_warning 31d", BASE "queue = { delay_warning = \"31d\"; };",
	    2, "queue.delay_warning: \"31d\" is out of range (0s..30d)" },
	{ "delay_warning negative", BASE "queue = { delay_warning = -1; };", 2,
	    "queue.delay_warning: -1 is out of range (0s..30d)" },
	{ "delay_warning sign", BASE "queue = { delay_warning = \"-1h\"; };",
	    2, "queue.delay_warning: invalid duration \"-1h\"" },
	{ "delay_warning empty", BASE "queue = { delay_warning = \"\"; };", 2,
	    "queue.delay_warning: invalid duration \"\"" },
	{ "key_file relative", BASE "queue = {\n"
	    "  key_file = \"queue.key\"; };", 3,
	    "queue.key_file: \"queue.key\" is not an absolute path" },
	{ "key_file empty", BASE "queue = { key_file = \"\"; };", 2,
	    "queue.key_file: must not be empty" },
	{ "key_file as int", BASE "queue = { key_file = 1; };", 2,
	    "queue.key_file: must be a string" },
	{ "durability unknown", BASE "redis = {\n  durability = \"none\"; };",
	    3, "redis.durability: \"none\" is not one of \"fsync\" or "
	    "\"relaxed\"" },
	{ "durability case", BASE "redis = { durability = \"FSYNC\"; };", 2,
	    "redis.durability: \"FSYNC\" is not one of \"fsync\" or "
	    "\"relaxed\"" },
	{ "durability as bool", BASE "redis = { durability = true; };", 2,
	    "redis.durability: must be a string: \"fsync\" or \"relaxed\"" },

	/* strings */
	{ "relative state_dir", BASE "state_dir = \"var/lib/sluice\";", 2,
	    "state_dir: \"var/lib/sluice\" is not an absolute path" },
	{ "relative pid_file", BASE "pid_file = \"sluiced.pid\";", 2,
	    "pid_file: \"sluiced.pid\" is not an absolute path" },
	{ "bad hostname", BASE "hostname = \"mail example\";", 2,
	    "hostname: \"mail example\" is not a valid host name" },
	{ "bad tls mode", "listen = ( { address = \"127.0.0.1\"; port = 25; "
	    "tls = \"ssl\"; } );", 1, "listen.[0].tls: \"ssl\" is not one of "
	    "\"starttls\", \"implicit\" or \"none\"" },
	{ "bad auth mode", "listen = ( { address = \"127.0.0.1\"; port = 25; "
	    "auth = \"never\"; } );", 1,
	    "listen.[0].auth: \"never\" is not one of" },
	{ "bad min_version", BASE "tls = { min_version = \"TLSv1.1\"; };", 2,
	    "tls.min_version: \"TLSv1.1\" is not one of \"TLSv1.2\" or "
	    "\"TLSv1.3\"" },
	{ "bad route tls", BASE "delivery = { routes = ( { domains = "
	    "[ \"*\" ]; mx = true; tls = \"must\"; } ); };", 2,
	    "delivery.routes.[0].tls: \"must\" is not one of \"none\", "
	    "\"may\", \"encrypt\", \"verify\" or \"implicit\"" },
	{ "prefix with space", BASE "redis = { prefix = \"a b\"; };", 2,
	    "redis.prefix: \"a b\" must not contain spaces" },
	{ "empty prefix", BASE "redis = { prefix = \"\"; };", 2,
	    "redis.prefix: must not be empty" },
	{ "bad user", BASE "users = { smtpd = \"Sluice\"; };", 2,
	    "users.smtpd: \"Sluice\" is not a valid user name" },
	{ "empty user", BASE "users = {\n redis = \"\"; };", 3,
	    "users.redis: must not be empty" },
	{ "relative server", BASE "redis = { server = \"bin/redis\"; };", 2,
	    "redis.server: \"bin/redis\" must be a command name" },
	{ "newline shown escaped", BASE "hostname = \"a\\nb\";", 2,
	    "hostname: \"a\\x0ab\" is not a valid host name" },

	/* metrics */
	{ "unknown metrics", BASE "metrics = { port = 9187; };", 2,
	    "metrics.port: unknown key" },
	{ "metrics as int", BASE "metrics = 9187;", 2,
	    "metrics: must be a group" },
	{ "metrics listen as int", BASE "metrics = {\n  listen = 9187; };", 3,
	    "metrics.listen: must be a string" },
	{ "metrics listen no port", BASE "metrics = { listen = "
	    "\"127.0.0.1\"; };", 2, "metrics.listen: \"127.0.0.1\" is not "
	    "\"ip:port\" (port 1..65535; \"[addr]:port\" for IPv6)" },
	{ "metrics listen port 0", BASE "metrics = { listen = "
	    "\"127.0.0.1:0\"; };", 2,
	    "metrics.listen: \"127.0.0.1:0\" is not \"ip:port\"" },
	{ "metrics listen port 65536", BASE "metrics = { listen = "
	    "\"127.0.0.1:65536\"; };", 2,
	    "metrics.listen: \"127.0.0.1:65536\" is not \"ip:port\"" },
	{ "metrics listen v6 unbracketed", BASE "metrics = { listen = "
	    "\"::1:9187\"; };", 2, "metrics.listen: \"::1:9187\"" },
	{ "metrics listen name", BASE "metrics = { listen = "
	    "\"localhost:9187\"; };", 2, "metrics.listen: \"localhost:9187\": "
	    "give a numeric address, not a host name" },
	{ "metrics on an smtp port", BASE "metrics = {\n"
	    "  listen = \"127.0.0.1:2587\"; };", 3, "metrics.listen: port "
	    "2587 is already used by the listener on line 1" },
	{ "metrics on a wildcard smtp port", "listen = (\n"
	    "  { address = \"0.0.0.0\"; port = 9187; } );\n"
	    "metrics = { };", 3, "metrics: port 9187 is already used by the "
	    "listener on line 2" },
	{ "metrics wildcard on an smtp port", BASE "metrics = { listen = "
	    "\"[::]:2587\"; };", 2, "metrics.listen: port 2587 is already "
	    "used" },

	/* syntax */
	{ "unterminated string", BASE "hostname = \"unterminated;\n", 2,
	    "hostname: unterminated string" },
	{ "string open at the end", BASE "hostname = \"a\";\n\"b\n", 3,
	    "syntax error: unterminated string" },
	{ "string over two lines", BASE "hostname = \"mail\n.example\";\n",
	    2, "hostname: unterminated string" },
	{ "missing value", BASE "hostname = \"x\";\nstate_dir = ;", 3,
	    "syntax error" },
	{ "duplicate key", BASE "hostname = \"x\";\nhostname = \"y\";", 3,
	    "duplicate setting name" },
	{ "missing include", BASE "@include \"/nonexistent/sluice.d/x.conf\"\n",
	    2, "cannot open include file" },
};

/* file_write - text into a fresh mkstemp() file */
static void
file_write(struct conf_file *f, const char *text)
{
	size_t	 len = strlen(text);
	int	 fd;

	strcpy(f->path, "/tmp/test_conf.XXXXXX");
	if ((fd = mkstemp(f->path)) == -1)
		fail_msg("mkstemp: %s", strerror(errno));
	if (write(fd, text, len) != (ssize_t)len)
		fail_msg("write %s: %s", f->path, strerror(errno));
	close(fd);
}

/* load_text - text through a temporary file; the file is gone after */
static struct conf *
load_text(const char *text, struct conf_file *f, char *err, size_t errlen)
{
	struct conf	*c;

	file_write(f, text);
	c = conf_load(f->path, err, errlen);
	unlink(f->path);
	return c;
}

static struct conf *
load_ok(const char *text)
{
	struct conf_file	 f;
	struct conf		*c;
	char			 err[512];

	if ((c = load_text(text, &f, err, sizeof(err))) == NULL)
		fail_msg("refused: %s\n--\n%s", err, text);
	return c;
}

/* expect_error - refused, with exactly "FILE:LINE: " and the message */
static void
expect_error(const struct bad_case *bc)
{
	struct conf_file	 f;
	struct conf		*c;
	char			 err[512], prefix[96];

	memset(err, 'X', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	if ((c = load_text(bc->text, &f, err, sizeof(err))) != NULL) {
		conf_free(c);
		fail_msg("%s: accepted", bc->name);
	}
	snprintf(prefix, sizeof(prefix), "%s:%d: ", f.path, bc->line);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("%s: want prefix \"%s\", got \"%s\"", bc->name,
		    prefix, err);
	if (strncmp(err + strlen(prefix), bc->msg, strlen(bc->msg)) != 0)
		fail_msg("%s: want \"%s...\" after the prefix, got \"%s\"",
		    bc->name, bc->msg, err);
	if (strchr(err, '\n') != NULL)
		fail_msg("%s: more than one line: \"%s\"", bc->name, err);
}

/* image_of - c exported to a fresh memfd, offset left at the end */
static int
image_of(const struct conf *c)
{
	int	 fd;

	if ((fd = memfd_create("sluice.conf", MFD_CLOEXEC)) == -1)
		fail_msg("memfd_create: %s", strerror(errno));
	assert_int_equal(conf_export(c, fd), 0);
	return fd;
}

static void
assert_str_or_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

/* assert_conf_equal - every value a consumer can see is the same */
static void
assert_conf_equal(const struct conf *a, const struct conf *b)
{
	size_t	 i, j;

	assert_string_equal(a->hostname, b->hostname);
	assert_string_equal(a->state_dir, b->state_dir);
	assert_string_equal(a->pid_file, b->pid_file);
	assert_int_equal(a->smtpd_processes, b->smtpd_processes);
	assert_int_equal(a->nlisten, b->nlisten);
	for (i = 0; i < a->nlisten; i++) {
		const struct conf_listen *x = &a->listen[i], *y = &b->listen[i];

		assert_string_equal(x->address, y->address);
		assert_int_equal(x->port, y->port);
		assert_int_equal(x->tls, y->tls);
		assert_int_equal(x->auth, y->auth);
		assert_int_equal(x->ntrusted, y->ntrusted);
		if (x->ntrusted > 0)
			assert_memory_equal(x->trusted, y->trusted,
			    x->ntrusted * sizeof(*x->trusted));
		assert_int_equal(x->sslen, y->sslen);
		assert_memory_equal(&x->ss, &y->ss, x->sslen);
	}
	assert_string_equal(a->tls.certificate, b->tls.certificate);
	assert_string_equal(a->tls.key, b->tls.key);
	assert_int_equal(a->tls.self_signed, b->tls.self_signed);
	assert_int_equal(a->tls.min_version, b->tls.min_version);
	assert_string_equal(a->tls.ca_file, b->tls.ca_file);
	assert_int_equal(a->redis.embedded, b->redis.embedded);
	assert_str_or_null(a->redis.address, b->redis.address);
	assert_str_or_null(a->redis.unix_path, b->redis.unix_path);
	assert_memory_equal(&a->redis.tcp, &b->redis.tcp, sizeof(a->redis.tcp));
	assert_str_or_null(a->redis.password_file, b->redis.password_file);
	assert_string_equal(a->redis.prefix, b->redis.prefix);
	assert_string_equal(a->redis.server, b->redis.server);
	assert_int_equal(a->redis.durability, b->redis.durability);
	assert_memory_equal(&a->limits, &b->limits, sizeof(a->limits));
	assert_memory_equal(&a->timeouts, &b->timeouts, sizeof(a->timeouts));
	assert_int_equal(a->queue.lifetime, b->queue.lifetime);
	assert_int_equal(a->queue.retry_min, b->queue.retry_min);
	assert_int_equal(a->queue.retry_max, b->queue.retry_max);
	assert_int_equal(a->queue.lease, b->queue.lease);
	assert_int_equal(a->queue.delay_warning, b->queue.delay_warning);
	assert_str_or_null(a->queue.key_file, b->queue.key_file);
	assert_int_equal(a->delivery.workers, b->delivery.workers);
	assert_int_equal(a->delivery.nroutes, b->delivery.nroutes);
	for (i = 0; i < a->delivery.nroutes; i++) {
		const struct conf_route *x = &a->delivery.routes[i];
		const struct conf_route *y = &b->delivery.routes[i];

		assert_int_equal(x->ndomains, y->ndomains);
		for (j = 0; j < x->ndomains; j++)
			assert_string_equal(x->domains[j], y->domains[j]);
		assert_str_or_null(x->smarthost, y->smarthost);
		assert_memory_equal(&x->relay, &y->relay, sizeof(x->relay));
		assert_int_equal(x->mx, y->mx);
		assert_int_equal(x->tls, y->tls);
		assert_str_or_null(x->auth_user, y->auth_user);
		assert_str_or_null(x->auth_password_file,
		    y->auth_password_file);
		assert_str_or_null(x->helo, y->helo);
		assert_int_equal(x->rate_count, y->rate_count);
		assert_int_equal(x->rate_period, y->rate_period);
		assert_int_equal(x->concurrency, y->concurrency);
	}
	assert_int_equal(a->dns.nservers, b->dns.nservers);
	if (a->dns.nservers > 0)
		assert_memory_equal(a->dns.servers, b->dns.servers,
		    a->dns.nservers * sizeof(*a->dns.servers));
	assert_int_equal(a->metrics.enabled, b->metrics.enabled);
	assert_str_or_null(a->metrics.listen, b->metrics.listen);
	assert_int_equal(a->metrics.sslen, b->metrics.sslen);
	assert_memory_equal(&a->metrics.ss, &b->metrics.ss, a->metrics.sslen);
	assert_string_equal(a->users.smtpd, b->users.smtpd);
	assert_string_equal(a->users.authd, b->users.authd);
	assert_string_equal(a->users.queued, b->users.queued);
	assert_string_equal(a->users.deliverd, b->users.deliverd);
	assert_string_equal(a->users.redis, b->users.redis);
}

static void
test_conf_defaults(void **state)
{
	struct conf		*c = load_ok(BASE);
	struct conf_listen	*l;
	struct sockaddr_in	*sin;
	char			 host[256];

	(void)state;
	assert_non_null(c->file);
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	assert_string_equal(c->hostname, host);
	assert_string_equal(c->state_dir, CONF_DEFAULT_STATE_DIR);
	assert_string_equal(c->pid_file, CONF_DEFAULT_PID_FILE);
	assert_true(c->smtpd_processes >= 1);
	assert_true(c->smtpd_processes <= CONF_MAX_PROCESSES);

	assert_int_equal(c->nlisten, 1);
	l = &c->listen[0];
	assert_string_equal(l->address, "127.0.0.1");
	assert_int_equal(l->port, 2587);
	assert_int_equal(l->tls, CONF_TLS_STARTTLS);
	assert_int_equal(l->auth, CONF_AUTH_REQUIRED);
	assert_int_equal(l->ntrusted, 0);
	assert_int_equal(l->line, 1);
	sin = (struct sockaddr_in *)&l->ss;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 2587);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(l->sslen, sizeof(*sin));

	assert_int_equal(c->tls.self_signed, 1);
	assert_string_equal(c->tls.certificate,
	    CONF_DEFAULT_STATE_DIR "/tls/selfsigned.crt");
	assert_string_equal(c->tls.key,
	    CONF_DEFAULT_STATE_DIR "/tls/selfsigned.key");
	assert_int_equal(c->tls.min_version, TLS1_2_VERSION);
	assert_string_equal(c->tls.ca_file,
	    "/etc/ssl/certs/ca-certificates.crt");

	assert_int_equal(c->redis.embedded, 1);
	assert_null(c->redis.address);
	assert_string_equal(c->redis.unix_path,
	    CONF_DEFAULT_STATE_DIR "/redis/redis.sock");
	assert_null(c->redis.password_file);
	assert_string_equal(c->redis.prefix, "sluice:");
	assert_string_equal(c->redis.server, "redis-server");
	assert_int_equal(c->redis.durability, CONF_DURABILITY_FSYNC);

	assert_int_equal(c->limits.message_size, 35 * 1024 * 1024);
	assert_int_equal(c->limits.recipients, 100);
	assert_int_equal(c->limits.connections, 2000);
	assert_int_equal(c->limits.connections_per_ip, 20);
	assert_int_equal(c->limits.errors, 10);
	assert_int_equal(c->limits.auth_failures, 5);
	assert_int_equal(c->limits.auth_block, 15 * 60);
	assert_int_equal(c->limits.user_messages_per_hour, 1000);
	assert_int_equal(c->limits.user_recipients_per_hour, 5000);

	assert_int_equal(c->timeouts.command, 300);
	assert_int_equal(c->timeouts.data_block, 180);
	assert_int_equal(c->timeouts.data_end, 600);
	assert_int_equal(c->timeouts.connect, 30);
	assert_int_equal(c->timeouts.upstream_command, 300);

	assert_int_equal(c->queue.lifetime, 5 * 86400);
	assert_int_equal(c->queue.retry_min, 60);
	assert_int_equal(c->queue.retry_max, 3600);
	assert_int_equal(c->queue.lease, 60);
	assert_int_equal(c->queue.delay_warning, 0);
	assert_null(c->queue.key_file);

	assert_int_equal(c->delivery.workers, 4);
	assert_int_equal(c->delivery.nroutes, 1);
	assert_int_equal(c->delivery.routes[0].ndomains, 1);
	assert_string_equal(c->delivery.routes[0].domains[0], "*");
	assert_int_equal(c->delivery.routes[0].mx, 1);
	assert_null(c->delivery.routes[0].smarthost);
	assert_int_equal(c->delivery.routes[0].tls, CONF_ROUTE_TLS_MAY);
	assert_int_equal(c->delivery.routes[0].rate_count, 0);
	assert_int_equal(c->delivery.routes[0].concurrency, 0);

	assert_null(c->dns.servers);
	assert_int_equal(c->dns.nservers, 0);

	/* no metrics group, no endpoint */
	assert_int_equal(c->metrics.enabled, 0);
	assert_null(c->metrics.listen);

	assert_string_equal(c->users.smtpd, "sluice-smtpd");
	assert_string_equal(c->users.authd, "sluice-authd");
	assert_string_equal(c->users.queued, "sluice-queued");
	assert_string_equal(c->users.deliverd, "sluice-deliverd");
	assert_string_equal(c->users.redis, "sluice-redis");
	assert_non_null(c->cfg);
	conf_free(c);
}

static void
test_conf_full_example(void **state)
{
	struct conf		*c = load_ok(full_text);
	struct conf_listen	*l;
	struct conf_route	*r;
	struct sockaddr_in	 sin;
	struct sockaddr_in6	*sin6;

	(void)state;
	assert_string_equal(c->hostname, "mail.example.org");
	assert_string_equal(c->state_dir, "/var/lib/sluice");
	assert_string_equal(c->pid_file, "/run/sluice/sluiced.pid");
	assert_int_equal(c->smtpd_processes, 3);

	assert_int_equal(c->nlisten, 3);
	assert_int_equal(c->listen[0].port, 587);
	assert_int_equal(c->listen[0].line, 6);
	l = &c->listen[1];
	assert_string_equal(l->address, "::");
	assert_int_equal(l->tls, CONF_TLS_IMPLICIT);
	sin6 = (struct sockaddr_in6 *)&l->ss;
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 465);
	assert_int_equal(l->sslen, sizeof(*sin6));
	l = &c->listen[2];
	assert_int_equal(l->auth, CONF_AUTH_OPTIONAL);
	assert_int_equal(l->ntrusted, 2);
	assert_int_equal(l->trusted[0].family, AF_INET);
	assert_int_equal(l->trusted[0].prefix, 8);
	assert_int_equal(l->trusted[1].family, AF_INET6);
	assert_int_equal(l->trusted[1].prefix, 32);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "10.20.30.40", &sin.sin_addr);
	assert_true(netaddr_cidr_match(&l->trusted[0],
	    (struct sockaddr *)&sin));

	assert_int_equal(c->tls.self_signed, 0);
	assert_string_equal(c->tls.certificate, "/etc/sluice/fullchain.pem");
	assert_string_equal(c->tls.key, "/etc/sluice/privkey.pem");
	assert_int_equal(c->tls.min_version, TLS1_3_VERSION);

	assert_int_equal(c->redis.embedded, 0);
	assert_string_equal(c->redis.address, "127.0.0.1:6379");
	assert_null(c->redis.unix_path);
	assert_string_equal(c->redis.tcp.host, "127.0.0.1");
	assert_int_equal(c->redis.tcp.port, 6379);
	assert_string_equal(c->redis.password_file, "/etc/sluice/redis.pass");
	assert_string_equal(c->redis.prefix, "mx1:");
	assert_int_equal(c->redis.durability, CONF_DURABILITY_RELAXED);

	assert_int_equal(c->queue.lifetime, 5 * 86400);
	assert_int_equal(c->queue.lease, 90);
	assert_int_equal(c->queue.delay_warning, 4 * 3600);
	assert_string_equal(c->queue.key_file, "/etc/sluice/queue.key");

	assert_int_equal(c->delivery.workers, 6);
	assert_int_equal(c->delivery.nroutes, 2);
	r = &c->delivery.routes[0];
	assert_int_equal(r->ndomains, 2);
	assert_string_equal(r->domains[0], "partner.example");
	assert_string_equal(r->domains[1], "*.partner.example");
	assert_string_equal(r->smarthost, "relay.partner.example:25");
	assert_string_equal(r->relay.host, "relay.partner.example");
	assert_int_equal(r->relay.port, 25);
	assert_int_equal(r->mx, 0);
	assert_int_equal(r->tls, CONF_ROUTE_TLS_MAY);
	assert_int_equal(r->line, 27);
	r = &c->delivery.routes[1];
	assert_int_equal(r->tls, CONF_ROUTE_TLS_VERIFY);
	assert_string_equal(r->auth_user, "org-relay");
	assert_string_equal(r->auth_password_file,
	    "/etc/sluice/upstream.pass");
	assert_string_equal(r->helo, "out.example.org");
	assert_int_equal(r->rate_count, 20);
	assert_int_equal(r->rate_period, 1);
	assert_int_equal(r->concurrency, 8);

	assert_int_equal(c->dns.nservers, 3);
	assert_string_equal(c->dns.servers[0].host, "127.0.0.1");
	assert_int_equal(c->dns.servers[0].port, 5353);
	assert_string_equal(c->dns.servers[1].host, "::1");
	assert_int_equal(c->dns.servers[1].port, 53);
	assert_string_equal(c->dns.servers[2].host, "192.0.2.53");
	assert_int_equal(c->dns.servers[2].port, 53);

	assert_string_equal(c->users.smtpd, "s-smtpd");
	assert_string_equal(c->users.queued, "s_q");
	assert_string_equal(c->users.redis, "redis");

	assert_int_equal(c->metrics.enabled, 1);
	assert_string_equal(c->metrics.listen, "[::1]:9100");
	sin6 = (struct sockaddr_in6 *)&c->metrics.ss;
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 9100);
	conf_free(c);
}

/* the exact ends of each range are accepted, as integers and strings */
static void
test_conf_boundaries_accepted(void **state)
{
	struct conf	*c;

	(void)state;
	c = load_ok("listen = ( { address = \"127.0.0.1\"; port = 1; },\n"
	    "  { address = \"127.0.0.1\"; port = 65535; } );\n"
	    "smtpd_processes = 256;\n"
	    "limits = { message_size = \"1K\"; recipients = 1;\n"
	    "  auth_block = 1; };\n"
	    "timeouts = { command = \"1s\"; data_block = \"1d\";\n"
	    "  data_end = 86400; connect = 1; upstream_command = \"24h\"; };\n"
	    "queue = { lifetime = \"30d\"; retry_min = \"1d\";\n"
	    "  retry_max = \"7d\"; };\n"
	    "delivery = { workers = 256; routes = ( { domains = [ \"*\" ];\n"
	    "  mx = true; concurrency = 1000; } ); };\n");
	assert_int_equal(c->listen[0].port, 1);
	assert_int_equal(c->listen[1].port, 65535);
	assert_int_equal(c->smtpd_processes, 256);
	assert_int_equal(c->limits.message_size, 1024);
	assert_int_equal(c->limits.auth_block, 1);
	assert_int_equal(c->timeouts.command, 1);
	assert_int_equal(c->timeouts.data_block, 86400);
	assert_int_equal(c->timeouts.data_end, 86400);
	assert_int_equal(c->timeouts.upstream_command, 86400);
	assert_int_equal(c->queue.lifetime, 30 * 86400);
	assert_int_equal(c->delivery.workers, 256);
	assert_int_equal(c->delivery.routes[0].concurrency, 1000);
	conf_free(c);

	c = load_ok(BASE "limits = { message_size = \"500M\"; };\n");
	assert_int_equal(c->limits.message_size, 524288000ULL);
	conf_free(c);
	c = load_ok(BASE "limits = { message_size = 524288000L; };\n");
	assert_int_equal(c->limits.message_size, 524288000ULL);
	conf_free(c);
	c = load_ok(BASE "limits = { message_size = 1024; };\n");
	assert_int_equal(c->limits.message_size, 1024);
	conf_free(c);
	/* retry_min == retry_max == lifetime is allowed */
	c = load_ok(BASE "queue = { lifetime = \"1h\"; retry_min = 3600;\n"
	    "  retry_max = \"60m\"; };\n");
	assert_int_equal(c->queue.retry_min, 3600);
	conf_free(c);
}

/* the queue keys at their ends; 0 turns delay warnings off */
static void
test_conf_queue_new_keys(void **state)
{
	static const struct {
		const char	*text;
		uint32_t	 lease, delay_warning;
	} rows[] = {
		{ "queue = { lease = 1; };", 1, 0 },
		{ "queue = { lease = \"1s\"; };", 1, 0 },
		{ "queue = { lease = \"1d\"; };", 86400, 0 },
		{ "queue = { lease = 86400; };", 86400, 0 },
		{ "queue = { lease = \"5m\"; };", 300, 0 },
		{ "queue = { delay_warning = 0; };", 60, 0 },
		{ "queue = { delay_warning = \"0\"; };", 60, 0 },
		{ "queue = { delay_warning = \"0s\"; };", 60, 0 },
		{ "queue = { delay_warning = \"0d\"; };", 60, 0 },
		{ "queue = { delay_warning = 1; };", 60, 1 },
		{ "queue = { delay_warning = \"4h\"; };", 60, 4 * 3600 },
		{ "queue = { delay_warning = \"30d\"; };", 60, 30 * 86400 },
		{ "queue = { delay_warning = 2592000; };", 60, 30 * 86400 },
	};
	struct conf	*c;
	char		 text[256];
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		snprintf(text, sizeof(text), BASE "%s\n", rows[i].text);
		c = load_ok(text);
		if (c->queue.lease != rows[i].lease ||
		    c->queue.delay_warning != rows[i].delay_warning)
			fail_msg("%s: lease %u, delay_warning %u", rows[i].text,
			    c->queue.lease, c->queue.delay_warning);
		assert_null(c->queue.key_file);
		conf_free(c);
	}

	c = load_ok(BASE "queue = { key_file = \"/srv/keys/queue.key\"; };\n");
	assert_string_equal(c->queue.key_file, "/srv/keys/queue.key");
	conf_free(c);

	/* a lifetime of one second is now allowed, with retries to match */
	c = load_ok(BASE "queue = { lifetime = \"1s\"; retry_min = 1;\n"
	    "  retry_max = 1; };\n");
	assert_int_equal(c->queue.lifetime, 1);
	conf_free(c);
	c = load_ok(BASE "queue = { lifetime = 59; retry_min = 1;\n"
	    "  retry_max = \"59s\"; };\n");
	assert_int_equal(c->queue.lifetime, 59);
	conf_free(c);
}

/*
 * metrics: an empty group turns the endpoint on, on loopback; a
 * listen key moves it; IPv6 needs brackets
 */
static void
test_conf_metrics(void **state)
{
	struct conf		*c;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	struct in6_addr		 lo6 = IN6ADDR_LOOPBACK_INIT;

	(void)state;
	c = load_ok(BASE "metrics = { };\n");
	assert_int_equal(c->metrics.enabled, 1);
	assert_string_equal(c->metrics.listen, "127.0.0.1:9187");
	sin = (struct sockaddr_in *)&c->metrics.ss;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 9187);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(c->metrics.sslen, sizeof(*sin));
	conf_free(c);

	c = load_ok(BASE "metrics = { listen = \"0.0.0.0:1\"; };\n");
	assert_int_equal(c->metrics.enabled, 1);
	sin = (struct sockaddr_in *)&c->metrics.ss;
	assert_int_equal(ntohs(sin->sin_port), 1);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	conf_free(c);

	c = load_ok(BASE "metrics = { listen = \"[::1]:65535\"; };\n");
	assert_string_equal(c->metrics.listen, "[::1]:65535");
	sin6 = (struct sockaddr_in6 *)&c->metrics.ss;
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 65535);
	assert_memory_equal(&sin6->sin6_addr, &lo6, sizeof(lo6));
	assert_int_equal(c->metrics.sslen, sizeof(*sin6));
	conf_free(c);

	/* another address on the port of a listener is no conflict */
	c = load_ok(BASE "metrics = { listen = \"127.0.0.2:2587\"; };\n");
	assert_int_equal(c->metrics.enabled, 1);
	conf_free(c);
}

static void
test_conf_redis_durability(void **state)
{
	struct conf	*c;

	(void)state;
	c = load_ok(BASE "redis = { durability = \"fsync\"; };\n");
	assert_int_equal(c->redis.durability, CONF_DURABILITY_FSYNC);
	conf_free(c);
	c = load_ok(BASE "redis = { durability = \"relaxed\"; };\n");
	assert_int_equal(c->redis.durability, CONF_DURABILITY_RELAXED);
	assert_int_equal(c->redis.embedded, 1);
	conf_free(c);
	c = load_ok(BASE "redis = { address = \"127.0.0.1:6379\";\n"
	    "  durability = \"relaxed\"; };\n");
	assert_int_equal(c->redis.durability, CONF_DURABILITY_RELAXED);
	assert_int_equal(c->redis.embedded, 0);
	conf_free(c);
}

/* every broken file gives its one line, at the right place */
static void
test_conf_error_table(void **state)
{
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
		expect_error(&bad_cases[i]);
}

static void
test_conf_smtpd_processes_per_core(void **state)
{
	struct conf	*c = load_ok(BASE "smtpd_processes = 0;\n");
	long		 n = sysconf(_SC_NPROCESSORS_ONLN);

	(void)state;
	if (n < 1)
		n = 1;
	if (n > CONF_MAX_PROCESSES)
		n = CONF_MAX_PROCESSES;
	assert_int_equal(c->smtpd_processes, n);
	conf_free(c);
}

static void
test_conf_redis_unix_address(void **state)
{
	struct conf	*c;

	(void)state;
	c = load_ok(BASE "redis = { address = \"unix:/run/redis/redis.sock\";\n"
	    "  password_file = \"/etc/sluice/redis.pass\"; };\n");
	assert_int_equal(c->redis.embedded, 0);
	assert_string_equal(c->redis.unix_path, "/run/redis/redis.sock");
	assert_string_equal(c->redis.address, "unix:/run/redis/redis.sock");
	assert_string_equal(c->redis.tcp.host, "");
	conf_free(c);

	c = load_ok(BASE "redis = { embedded = false; address = "
	    "\"[::1]:6380\"; };\n");
	assert_int_equal(c->redis.embedded, 0);
	assert_null(c->redis.unix_path);
	assert_string_equal(c->redis.tcp.host, "::1");
	assert_int_equal(c->redis.tcp.port, 6380);
	conf_free(c);

	c = load_ok(BASE "redis = { embedded = true; };\n"
	    "state_dir = \"/srv/sluice\";\n");
	assert_int_equal(c->redis.embedded, 1);
	assert_string_equal(c->redis.unix_path, "/srv/sluice/redis/redis.sock");
	assert_string_equal(c->tls.certificate, "/srv/sluice/tls/selfsigned.crt");
	conf_free(c);
}

/* the embedded socket path must fit in sun_path */
static void
test_conf_state_dir_too_long(void **state)
{
	struct conf_file	 f;
	struct conf		*c;
	char			 text[512], dir[120], err[512], want[96];

	(void)state;
	memset(dir, 'd', sizeof(dir) - 1);
	dir[0] = '/';
	dir[sizeof(dir) - 1] = '\0';
	snprintf(text, sizeof(text), BASE "state_dir = \"%s\";\n", dir);
	assert_null(c = load_text(text, &f, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2: state_dir: too long", f.path);
	assert_memory_equal(err, want, strlen(want));
}

static void
test_conf_export_roundtrip(void **state)
{
	struct conf	*a, *b, *c;
	char		 err[512];
	int		 fd, fd2;

	(void)state;
	a = load_ok(full_text);
	fd = image_of(a);
	/* conf_load_fd() rewinds: the offset is at the end here */
	b = conf_load_fd(fd, "sluiced", err, sizeof(err));
	if (b == NULL)
		fail_msg("image refused: %s", err);
	assert_conf_equal(a, b);
	assert_string_equal(b->file, "sluiced");

	/* an image of an image is the same again */
	fd2 = image_of(b);
	c = conf_load_fd(fd2, "sluiced", err, sizeof(err));
	if (c == NULL)
		fail_msg("second image refused: %s", err);
	assert_conf_equal(a, c);
	/* the caller's descriptor stays open */
	assert_int_not_equal(fcntl(fd, F_GETFD), -1);
	close(fd);
	close(fd2);
	conf_free(a);
	conf_free(b);
	conf_free(c);
}

/*
 * Values resolved from the machine travel in the image: a child in its
 * sandbox must not look them up again.
 */
static void
test_conf_export_pins_resolved_values(void **state)
{
	struct conf	*a, *b;
	char		 err[512], text[8192];
	ssize_t		 n;
	int		 fd;

	(void)state;
	a = load_ok(BASE);
	fd = image_of(a);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	n = read(fd, text, sizeof(text) - 1);
	assert_true(n > 0);
	text[n] = '\0';
	assert_non_null(strstr(text, "hostname"));
	assert_non_null(strstr(text, "smtpd_processes"));
	b = conf_load_fd(fd, "sluiced", err, sizeof(err));
	assert_non_null(b);
	assert_conf_equal(a, b);
	close(fd);
	conf_free(a);
	conf_free(b);
}

static void
test_conf_load_fd_errors_named(void **state)
{
	const char	 text[] = BASE "\nlimits = { colour = 1; };\n";
	struct conf	*c;
	char		 err[512];
	int		 fd;

	(void)state;
	fd = memfd_create("text", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), strlen(text));
	c = conf_load_fd(fd, "image", err, sizeof(err));
	assert_null(c);
	assert_string_equal(err, "image:3: limits.colour: unknown key");
	close(fd);

	assert_null(conf_load_fd(-1, "image", err, sizeof(err)));
	assert_memory_equal(err, "image: cannot read", 18);
}

static void
test_conf_include(void **state)
{
	struct conf_file	 inc, f;
	struct conf		*c;
	char			 text[256], err[512], want[128];

	(void)state;
	file_write(&inc, "limits = { recipients = 42; };\n"
	    "queue = { lifetime = \"2d\"; };\n");
	snprintf(text, sizeof(text), BASE "@include \"%s\"\n"
	    "hostname = \"mail.example.org\";\n", inc.path);
	c = load_text(text, &f, err, sizeof(err));
	if (c == NULL)
		fail_msg("refused: %s", err);
	assert_int_equal(c->limits.recipients, 42);
	assert_int_equal(c->queue.lifetime, 2 * 86400);
	assert_string_equal(c->hostname, "mail.example.org");
	conf_free(c);
	unlink(inc.path);

	/* an error in the included file names that file and its line */
	file_write(&inc, "\n\nlimits = { recipients = 0; };\n");
	snprintf(text, sizeof(text), BASE "@include \"%s\"\n", inc.path);
	assert_null(load_text(text, &f, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:3: limits.recipients: 0 is out of "
	    "range (1..100000)", inc.path);
	assert_string_equal(err, want);
	unlink(inc.path);

	/* and so does a literal libconfig would truncate */
	file_write(&inc, "\nlimits = { recipients = 3000000000; };\n");
	snprintf(text, sizeof(text), BASE "@include \"%s\"\n", inc.path);
	assert_null(load_text(text, &f, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2: limits.recipients: 3000000000 "
	    "does not fit", inc.path);
	assert_memory_equal(err, want, strlen(want));
	unlink(inc.path);
}

/* numbers in comments, strings and names are not integers */
static void
test_conf_literals_elsewhere_ignored(void **state)
{
	struct conf	*c;

	(void)state;
	c = load_ok("# 99999999999 in a comment\n"
	    "/* 99999999999\n 88888888888 */ // 77777777777\n"
	    BASE "hostname = \"h99999999999.example\";\n"
	    "limits = { message_size = \"99999K\"; };\n");
	assert_string_equal(c->hostname, "h99999999999.example");
	assert_int_equal(c->limits.message_size, 99999 * 1024);
	conf_free(c);
}

static void
test_conf_missing_file(void **state)
{
	char	 err[512];

	(void)state;
	assert_null(conf_load("/nonexistent/sluice.conf", err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/sluice.conf: cannot read: "
	    "No such file or directory");
	assert_null(conf_load(NULL, err, sizeof(err)));
}

/* a NUL byte would hide the rest of the file from libconfig */
static void
test_conf_nul_byte_refused(void **state)
{
	struct conf_file	 f;
	char			 err[512], want[128];
	int			 fd;

	(void)state;
	file_write(&f, BASE);
	assert_true((fd = open(f.path, O_WRONLY | O_APPEND)) >= 0);
	assert_int_equal(write(fd, "\0colour = 1;\n", 13), 13);
	close(fd);
	assert_null(conf_load(f.path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: cannot read: contains a NUL byte",
	    f.path);
	assert_string_equal(err, want);
	unlink(f.path);
}

/* a file too large to be a configuration is refused, not truncated */
static void
test_conf_huge_file_refused(void **state)
{
	struct conf_file	 f;
	char			 err[512], line[1024];
	size_t			 i;
	int			 fd;

	(void)state;
	file_write(&f, BASE);
	assert_true((fd = open(f.path, O_WRONLY | O_APPEND)) >= 0);
	memset(line, '#', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	for (i = 0; i < 1024; i++)
		assert_int_equal(write(fd, line, sizeof(line)), sizeof(line));
	close(fd);
	assert_null(conf_load(f.path, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot read: larger than 1 MiB"));
	unlink(f.path);
}

/* a short error buffer is cut, never overrun */
static void
test_conf_short_error_buffer(void **state)
{
	struct conf_file	 f;
	char			 err[16];

	(void)state;
	memset(err, 'X', sizeof(err));
	assert_null(load_text(BASE "colour = 1;\n", &f, err, 8));
	assert_int_equal(strlen(err), 7);
	assert_int_equal(err[8], 'X');
}

static void
test_conf_domains_lowercased(void **state)
{
	struct conf	*c;

	(void)state;
	c = load_ok(BASE "delivery = { routes = ( { domains = [ \"EXAMPLE.Org\","
	    " \"*.Sub.Example\", \"*\" ]; mx = true; tls = \"none\"; } ); };\n");
	assert_string_equal(c->delivery.routes[0].domains[0], "example.org");
	assert_string_equal(c->delivery.routes[0].domains[1], "*.sub.example");
	assert_string_equal(c->delivery.routes[0].domains[2], "*");
	assert_int_equal(c->delivery.routes[0].tls, CONF_ROUTE_TLS_NONE);
	conf_free(c);
}

static void
test_conf_mode_strings(void **state)
{
	(void)state;
	assert_string_equal(conf_tls_mode_str(CONF_TLS_NONE), "none");
	assert_string_equal(conf_tls_mode_str(CONF_TLS_STARTTLS), "starttls");
	assert_string_equal(conf_tls_mode_str(CONF_TLS_IMPLICIT), "implicit");
	assert_string_equal(conf_tls_mode_str((enum conf_tls_mode)99),
	    "unknown");
	assert_string_equal(conf_route_tls_str(CONF_ROUTE_TLS_NONE), "none");
	assert_string_equal(conf_route_tls_str(CONF_ROUTE_TLS_MAY), "may");
	assert_string_equal(conf_route_tls_str(CONF_ROUTE_TLS_ENCRYPT),
	    "encrypt");
	assert_string_equal(conf_route_tls_str(CONF_ROUTE_TLS_VERIFY),
	    "verify");
	assert_string_equal(conf_route_tls_str(CONF_ROUTE_TLS_IMPLICIT),
	    "implicit");
}

static void
test_conf_free_null(void **state)
{
	(void)state;
	conf_free(NULL);
	assert_int_equal(conf_export(NULL, 1), -1);
	assert_int_equal(errno, EINVAL);
}

/* the shipped example loads, when the test runs from the source tree */
static void
test_conf_example_file(void **state)
{
	struct conf	*c;
	char		 err[512];

	(void)state;
	if (access(EXAMPLE, R_OK) == -1)
		skip();
	if ((c = conf_load(EXAMPLE, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	assert_int_equal(c->nlisten, 2);
	assert_int_equal(c->listen[0].port, 587);
	assert_int_equal(c->listen[1].port, 465);
	assert_int_equal(c->listen[1].tls, CONF_TLS_IMPLICIT);
	assert_int_equal(c->redis.embedded, 1);
	assert_int_equal(c->tls.self_signed, 1);
	assert_int_equal(c->redis.durability, CONF_DURABILITY_FSYNC);
	assert_int_equal(c->queue.lease, 60);
	assert_int_equal(c->queue.delay_warning, 0);
	assert_null(c->queue.key_file);
	assert_true(c->delivery.nroutes >= 1);
	conf_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_defaults),
		cmocka_unit_test(test_conf_full_example),
		cmocka_unit_test(test_conf_boundaries_accepted),
		cmocka_unit_test(test_conf_queue_new_keys),
		cmocka_unit_test(test_conf_redis_durability),
		cmocka_unit_test(test_conf_metrics),
		cmocka_unit_test(test_conf_error_table),
		cmocka_unit_test(test_conf_smtpd_processes_per_core),
		cmocka_unit_test(test_conf_redis_unix_address),
		cmocka_unit_test(test_conf_state_dir_too_long),
		cmocka_unit_test(test_conf_export_roundtrip),
		cmocka_unit_test(test_conf_export_pins_resolved_values),
		cmocka_unit_test(test_conf_load_fd_errors_named),
		cmocka_unit_test(test_conf_include),
		cmocka_unit_test(test_conf_literals_elsewhere_ignored),
		cmocka_unit_test(test_conf_missing_file),
		cmocka_unit_test(test_conf_nul_byte_refused),
		cmocka_unit_test(test_conf_huge_file_refused),
		cmocka_unit_test(test_conf_short_error_buffer),
		cmocka_unit_test(test_conf_domains_lowercased),
		cmocka_unit_test(test_conf_mode_strings),
		cmocka_unit_test(test_conf_free_null),
		cmocka_unit_test(test_conf_example_file),
	};

	log_init("test_conf", LOG_F_STDERR | LOG_F_NOSYSLOG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
