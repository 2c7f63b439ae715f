function st = tl_drain(st, wait_ms)
% Reads what the daemon published (heartbeats and acks): waits up to wait_ms for the first
% message, then takes whatever else is already there without waiting.
DONTWAIT = 1;  % ZMQ_DONTWAIT
st.sub.setReceiveTimeOut(max(1, round(wait_ms)));
flags = 0;
while true
    topic = st.sub.recv(flags);
    if isempty(topic)
        return
    end
    flags = DONTWAIT;
    parts = {};
    while st.sub.hasReceiveMore()
        parts{end + 1} = st.sub.recv(0); %#ok<AGROW>
    end
    if numel(parts) ~= 2 || numel(parts{1}) ~= 64
        continue  % not a twinloop message; the daemon never sends one
    end
    header = parts{1};
    name = char(typecast(int8(topic(:).'), 'uint8'));
    if strcmp(name, 'ack')
        seq = double(typecast(int8(header(17:24).'), 'uint64'));
        epoch = double(typecast(int8(parts{2}(:).'), 'uint64'));
        if epoch == st.epoch
            st.acked = max(st.acked, seq);
        else
            st.stale_acks = st.stale_acks + 1;  % an ack of an earlier hello (section 6)
        end
    elseif strcmp(name, 'status')
        st.status = jsondecode(char(typecast(int8(parts{2}(:).'), 'uint8')));
    end
end
end
