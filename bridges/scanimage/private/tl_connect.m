function st = tl_connect(opts)
% Connects to the daemon in the documented order (docs/protocol.md section 2): SUB first,
% wait for its first heartbeat (the subscription is then live), PUSH, then `hello`.
[~, ~, endian] = computer();
if endian ~= 'L'
    error('twinloop:endian', 'twinloop_si: the wire format is little-endian; this host is not');
end
tl_jeromq(opts.jar);
SUB = 2; PUSH = 8;  % ZMQ_SUB, ZMQ_PUSH
st = struct('opts', opts, 'refused', false, 'sent', 0, 'dropped', 0, 'acked', -1, ...
            'stale_acks', 0, 'epoch', 0, 'window', 32, 'status', [], 'final', [], ...
            'first_frame', NaN, 'last_frame', NaN, 'warned', struct(), 'ended_by', '');
st.ctx = javaMethod('context', 'org.zeromq.ZMQ', 1);
st.sub = st.ctx.socket(SUB);
st.sub.setLinger(0);
st.sub.setRcvHWM(0);  % never drop published messages (acks, heartbeats) when busy
st.sub.subscribe(int8('status'));
st.sub.subscribe(int8('ack'));
st.sub.connect(opts.publish);
deadline = tl_now() + opts.connect_timeout_s;
while isempty(st.status)
    st = tl_drain(st, 50);
    if isempty(st.status) && tl_now() > deadline
        st.sub.close();
        st.ctx.term();
        error('twinloop:connect', ['twinloop_si: no heartbeat from the daemon at %s within ' ...
              '%g s: is `twinloop run <config>` running, and is this its source.publish?'], ...
              opts.publish, opts.connect_timeout_s);
    end
end
st.window = double(st.status.flow_window);
st.push = st.ctx.socket(PUSH);
% Bounded everything: a sender that ignores the window blocks instead of queueing (SNDHWM,
% section 6); a daemon that went away fails a send instead of hanging ScanImage.
st.push.setSndHWM(4 * st.window + 16);
st.push.setSendTimeOut(2000);
st.push.setLinger(2000);
st.push.connect(opts.ingest);
% A fresh epoch per hello, below 2^53 so that it is exact as a double in any JSON library.
st.epoch = floor(rand() * (2^53 - 2)) + 1;
hello = sprintf(['{"event":"hello","epoch":%d,"source":"scanimage","bridge":' ...
                 '"bridges/scanimage/twinloop_si.m","channels":%s,"planes":%d}'], ...
                st.epoch, tl_json_list(opts.channels), opts.planes);
tl_send(st, 'control', tl_header(5, 32, numel(hello), 0, 0, 0, 0, 0, tl_sent_ns(st)), ...
        uint8(hello));
end

function s = tl_json_list(v)
s = sprintf('%d,', v);
s = ['[' s(1:end - 1) ']'];
end
