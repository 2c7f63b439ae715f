function t = tl_sent_ns(st)
% sent_ns of the header: the host's monotonic clock (java.lang.System.nanoTime reads
% CLOCK_MONOTONIC on Linux, as the daemon does) when asked for, else 0 (unknown).
if st.opts.sent_ns
    t = javaMethod('nanoTime', 'java.lang.System');
else
    t = 0;
end
end
