function tl_send(st, topic, header, payload)
% One three-part message (topic, header, payload) on the PUSH socket.
SNDMORE = 2;  % ZMQ_SNDMORE (the wire constants are stable across ZeroMQ libraries)
st.push.send(int8(topic), SNDMORE);
st.push.send(typecast(header, 'int8'), SNDMORE);
ok = st.push.send(tl_bytes(payload), 0);
if ~ok
    error('twinloop:send', ['twinloop_si: the daemon did not take a %s message within the ' ...
          'send timeout: is it still running at %s?'], topic, st.opts.ingest);
end
end

function b = tl_bytes(x)
% Raw bytes of a numeric array in memory order, as the int8 row Java's byte[] takes.
b = reshape(typecast(x(:).', 'int8'), 1, []);
end
