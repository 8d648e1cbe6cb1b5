/*
 * json.c - a small streaming JSON writer (RFC 8259) for sluicectl --json
 *
 * Everything sluicectl prints as JSON comes from Redis, and most of it
 * from a network peer at some point (addresses, HELO names, replies of
 * remote servers), so the escaper assumes nothing about the bytes: it
 * validates UTF-8 itself rather than trusting the locale.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"

static void	json_value_start(struct json *);
static void	json_value_end(struct json *);
static void	json_push(struct json *, int);
static void	json_pop(struct json *, int);
static void	json_escape(FILE *, const char *, size_t);

void
json_init(struct json *j, FILE *fp)
{
	memset(j, 0, sizeof(*j));
	j->fp = fp;
}

/* json_value_start - the comma before an array element; check the order */
static void
json_value_start(struct json *j)
{
	if (j->depth == 0) {
		log_assert(!j->done);
		return;
	}
	if (j->in_object[j->depth - 1]) {
		/* json_key() wrote the comma and the colon */
		log_assert(!j->want_key);
		return;
	}
	if (j->count[j->depth - 1])
		putc(',', j->fp);
	j->count[j->depth - 1] = 1;
}

/* json_value_end - after a value an object wants its next key */
static void
json_value_end(struct json *j)
{
	if (j->depth == 0)
		j->done = 1;
	else if (j->in_object[j->depth - 1])
		j->want_key = 1;
}

static void
json_push(struct json *j, int object)
{
	json_value_start(j);
	log_assert(j->depth < JSON_DEPTH_MAX);
	j->in_object[j->depth] = object != 0;
	j->count[j->depth] = 0;
	j->depth++;
	j->want_key = object;
	putc(object ? '{' : '[', j->fp);
}

static void
json_pop(struct json *j, int object)
{
	log_assert(j->depth > 0 && j->in_object[j->depth - 1] == object);
	/* a key without its value would leave {"k":} behind */
	log_assert(!object || j->want_key);
	j->depth--;
	putc(object ? '}' : ']', j->fp);
	json_value_end(j);
}

void
json_object_begin(struct json *j)
{
	json_push(j, 1);
}

void
json_object_end(struct json *j)
{
	json_pop(j, 1);
}

void
json_array_begin(struct json *j)
{
	json_push(j, 0);
}

void
json_array_end(struct json *j)
{
	json_pop(j, 0);
}

void
json_key(struct json *j, const char *key)
{
	log_assert(j->depth > 0 && j->in_object[j->depth - 1] &&
	    j->want_key);
	if (j->count[j->depth - 1])
		putc(',', j->fp);
	j->count[j->depth - 1] = 1;
	json_escape(j->fp, key, strlen(key));
	putc(':', j->fp);
	j->want_key = 0;
}

void
json_str(struct json *j, const char *s)
{
	json_strn(j, s, s == NULL ? 0 : strlen(s));
}

void
json_strn(struct json *j, const char *s, size_t n)
{
	json_value_start(j);
	json_escape(j->fp, s == NULL ? "" : s, n);
	json_value_end(j);
}

void
json_int(struct json *j, long long v)
{
	json_value_start(j);
	fprintf(j->fp, "%lld", v);
	json_value_end(j);
}

void
json_null(struct json *j)
{
	json_value_start(j);
	fputs("null", j->fp);
	json_value_end(j);
}

void
json_kstr(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	json_str(j, s);
}

void
json_kint(struct json *j, const char *key, long long v)
{
	json_key(j, key);
	json_int(j, v);
}

/* json_finish - end the text; report whether stdio lost any of it */
int
json_finish(struct json *j)
{
	log_assert(j->depth == 0 && j->done);
	putc('\n', j->fp);
	return ferror(j->fp) ? -1 : 0;
}

/*
 * json_utf8_len - length of the well-formed UTF-8 sequence at p, or 0
 *
 * The ranges are those of RFC 3629 section 4: no overlong forms (C0,
 * C1, E0 80..9F, F0 80..8F), no surrogates (ED A0..BF), nothing above
 * U+10FFFF (F4 90.., F5..FF).
 */
size_t
json_utf8_len(const unsigned char *p, size_t n)
{
	unsigned char	 lo = 0x80, hi = 0xbf;
	size_t		 len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;
		else if (p[0] == 0xed)
			hi = 0x9f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		if (p[0] == 0xf0)
			lo = 0x90;
		else if (p[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/* json_escape - one string literal, valid JSON whatever the bytes are */
static void
json_escape(FILE *fp, const char *s, size_t n)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, len;

	putc('"', fp);
	while (i < n) {
		switch (p[i]) {
		case '"':
			fputs("\\\"", fp);
			break;
		case '\\':
			fputs("\\\\", fp);
			break;
		case '\b':
			fputs("\\b", fp);
			break;
		case '\f':
			fputs("\\f", fp);
			break;
		case '\n':
			fputs("\\n", fp);
			break;
		case '\r':
			fputs("\\r", fp);
			break;
		case '\t':
			fputs("\\t", fp);
			break;
		default:
			if (p[i] < 0x20 || p[i] == 0x7f) {
				fprintf(fp, "\\u00%c%c", hex[p[i] >> 4],
				    hex[p[i] & 0xf]);
				break;
			}
			if ((len = json_utf8_len(p + i, n - i)) == 0) {
				fputs("\\ufffd", fp);
				break;
			}
			fwrite(p + i, 1, len, fp);
			i += len;
			continue;
		}
		i++;
	}
	putc('"', fp);
}
