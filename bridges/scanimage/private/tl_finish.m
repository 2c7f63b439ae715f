function st = tl_finish(st, why)
% Ends the session: `end`, then the daemon's final heartbeat (its counters), then close.
body = sprintf(['{"event":"end","reason":"%s","frames_sent":%d,"frames_dropped":%d,' ...
                '"first_frame":%s,"last_frame":%s}'], why, st.sent, st.dropped, ...
               tl_num(st.first_frame), tl_num(st.last_frame));
try
    tl_send(st, 'control', tl_header(5, 32, numel(body), 0, 0, 0, 0, 0, tl_sent_ns(st)), ...
            uint8(body));
    deadline = tl_now() + 10;
    while ~(isstruct(st.status) && strcmp(st.status.state, 'ended')) && tl_now() < deadline
        st = tl_drain(st, 100);
    end
    if strcmp(st.status.state, 'ended')
        st.final = st.status;
    else
        warning('twinloop:end', ['twinloop_si: sent `end` but saw no final heartbeat from ' ...
                '%s within 10 s'], st.opts.publish);
    end
catch err
    warning('twinloop:end', 'twinloop_si: ending the session failed: %s', err.message);
end
st.ended_by = why;
st.push.close();
st.sub.close();
st.ctx.term();
st = rmfield(st, {'push', 'sub', 'ctx'});
end

function s = tl_num(x)
if isnan(x)
    s = 'null';
else
    s = sprintf('%d', x);
end
end
