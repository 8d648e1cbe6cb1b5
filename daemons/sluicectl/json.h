/*
 * NAME
 *	json - a small streaming JSON writer for sluicectl --json
 * SYNOPSIS
 *	#include "json.h"
 *
 *	void json_init(struct json *j, FILE *fp);
 *	void json_object_begin(struct json *j);
 *	void json_object_end(struct json *j);
 *	void json_array_begin(struct json *j);
 *	void json_array_end(struct json *j);
 *	void json_key(struct json *j, const char *key);
 *	void json_str(struct json *j, const char *s);
 *	void json_strn(struct json *j, const char *s, size_t n);
 *	void json_int(struct json *j, long long v);
 *	void json_null(struct json *j);
 *	void json_kstr(struct json *j, const char *key, const char *s);
 *	void json_kint(struct json *j, const char *key, long long v);
 *	int json_finish(struct json *j);
 *	size_t json_utf8_len(const unsigned char *p, size_t n);
 * DESCRIPTION
 *	The writer emits one compact JSON text onto fp as the calls come,
 *	with the commas and colons put in for the caller; nothing is
 *	buffered beyond stdio.  Inside an object every value follows a
 *	json_key(); json_kstr() and json_kint() are the two in one.
 *	Nesting is at most JSON_DEPTH_MAX deep.
 *
 *	Strings are bytes, not necessarily C strings (json_strn() takes a
 *	length, so a NUL is written as \u0000).  The quote, the backslash
 *	and every control character (below 0x20, and 0x7f) are escaped;
 *	valid UTF-8 passes through unchanged, and each byte that does not
 *	start a valid UTF-8 sequence (overlong forms, surrogates and code
 *	points past U+10FFFF included) becomes \ufffd, so the output is
 *	always valid JSON in UTF-8 whatever a peer put into a field.
 *	NULL is written as "".
 *
 *	json_finish() ends the text with a newline once every object and
 *	array is closed.  json_utf8_len() is the validator the escaper
 *	uses: the length (1..4) of the valid UTF-8 sequence at p, which has
 *	n > 0 bytes, or 0 when p[0] does not start one.
 * DIAGNOSTICS
 *	Calls in an impossible order (a value where a key is due, an end
 *	that matches nothing, too deep a nesting) are programming errors
 *	and abort through log_assert().  json_finish() returns -1 when fp
 *	has an error, 0 otherwise.
 */
#ifndef SLUICECTL_JSON_H
#define SLUICECTL_JSON_H

#include <stddef.h>
#include <stdio.h>

#define JSON_DEPTH_MAX	16

struct json {
	FILE		*fp;
	int		 depth;
	int		 want_key;		/* in an object, before a key */
	int		 done;			/* the top-level value is out */
	unsigned char	 in_object[JSON_DEPTH_MAX];
	unsigned char	 count[JSON_DEPTH_MAX];	/* 0: nothing written yet */
};

void	json_init(struct json *, FILE *);
void	json_object_begin(struct json *);
void	json_object_end(struct json *);
void	json_array_begin(struct json *);
void	json_array_end(struct json *);
void	json_key(struct json *, const char *);
void	json_str(struct json *, const char *);
void	json_strn(struct json *, const char *, size_t);
void	json_int(struct json *, long long);
void	json_null(struct json *);
void	json_kstr(struct json *, const char *, const char *);
void	json_kint(struct json *, const char *, long long);
int	json_finish(struct json *);
size_t	json_utf8_len(const unsigned char *, size_t);

#endif
