/* The status commands' one HTTP response, read with http-parser. */
#include "status.h"

#if HAVE_HTTP_PARSER
#include <http_parser.h>

static int on_body(http_parser *p, const char *at, size_t len)
{
	mgrok_buf_append(p->data, at, len);
	return 0;
}

static int on_complete(http_parser *p) { return 1; /* one response is all there is */ }

int mgrok_status_parse_response(const uint8_t *buf, size_t len, int *status, struct mgrok_buf *body)
{
	static const http_parser_settings cb = {.on_body = on_body,
	                                        .on_message_complete = on_complete};
	http_parser p;
	http_parser_init(&p, HTTP_RESPONSE);
	p.data = body;
	http_parser_execute(&p, &cb, (const char *)buf, len);
	/* A body delimited by the close ends with the input: EOF is a call with 0 bytes. */
	if (p.http_errno == HPE_OK)
		http_parser_execute(&p, &cb, NULL, 0);
	/* Nothing, or blank lines, leave the parser content and no status line read. */
	if ((p.http_errno != HPE_OK && p.http_errno != HPE_CB_message_complete) || !p.status_code)
		return -1;
	*status = (int)p.status_code;
	return 0;
}

#else

int mgrok_status_parse_response(const uint8_t *buf, size_t len, int *status, struct mgrok_buf *body)
{
	return -1;
}

#endif
