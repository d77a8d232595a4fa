#include "stream_rules.h"

bool mgrok_stream_may_read(const struct mgrok_mux_stream *ms, const struct mgrok_stream_flags *f)
{
	return f->attached && !f->connecting && !f->stalled &&
	       !(ms->state & MGROK_MUX_SENT_CLOSE) && ms->send_window > 0;
}

enum mgrok_stream_next mgrok_stream_next(const struct mgrok_mux_stream *ms,
                                         const struct mgrok_stream_flags *f, size_t pending)
{
	/* Bytes still owed to the socket come first, whatever was closed. */
	if (pending || f->connecting)
		return MGROK_STREAM_WAIT;
	if (mgrok_mux_done(ms))
		return MGROK_STREAM_DONE;
	if ((ms->state & MGROK_MUX_GOT_CLOSE) && f->attached && !f->shut_wr)
		return MGROK_STREAM_SHUT_WR;
	return MGROK_STREAM_WAIT;
}
