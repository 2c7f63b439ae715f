function st = tl_frame(st, hSI)
% frameAcquired: the newest frame in ScanImage's display buffer, one `two_photon` message per
% chosen channel (docs/protocol.md section 4).
stripe = hSI.hDisplay.stripeDataBuffer{hSI.hDisplay.stripeDataBufferPointer};
n = double(stripe.frameNumberAcqMode);  % from 1 in this acquisition mode
if ~isnan(st.last_frame) && n <= st.last_frame
    return  % the display buffer still holds a frame already sent
end
if isnan(st.first_frame)
    st.first_frame = n;
end
st.last_frame = n;
if numel(stripe.roiData) > 1 && ~isfield(st.warned, 'rois')
    st.warned.rois = true;
    warning('twinloop:rois', ['twinloop_si: %d ROIs in this scan; only the first is sent ' ...
            '(the daemon takes one field of view per plane)'], numel(stripe.roiData));
end
roi = stripe.roiData{1};
plane = mod(n - 1, st.opts.planes);
seq = floor((n - 1) / st.opts.planes);
t_ns = round(double(stripe.frameTimestamp) * 1e9) + st.opts.t0_ns;
for wire = 1:numel(st.opts.channels)
    ci = find(double(stripe.channelNumbers) == st.opts.channels(wire), 1);
    if isempty(ci)
        st = tl_warn_once(st, sprintf('channel%d', st.opts.channels(wire)), sprintf( ...
            ['twinloop_si: channel %d is not in this acquisition''s display channels (%s); ' ...
             'turn its display on, or drop it from ''channels'''], ...
            st.opts.channels(wire), mat2str(double(stripe.channelNumbers))));
        continue
    end
    img = roi.imageData{ci}{1};
    % ScanImage keeps imageData transposed (pixels per line down the columns), so MATLAB's
    % column-major memory already is the image's row-major order; a stand-in may say otherwise.
    if isfield(stripe, 'transposed') || isprop_safe(stripe, 'transposed')
        transposed = logical(stripe.transposed);
    else
        transposed = true;
    end
    if ~transposed
        img = img.';
    end
    shape = [size(img, 2), size(img, 1)];  % [lines, pixels per line] = [height, width]
    switch class(img)
        case 'int16', dtype = 3;
        case 'uint16', dtype = 2;
        otherwise
            st.refused = true;
            error('twinloop:dtype', ['twinloop_si: frames are %s; the daemon takes int16 ' ...
                  'or uint16 (ScanImage''s raw data is int16): streaming stopped'], class(img));
    end
    want = double([st.status.imaging.height, st.status.imaging.width]);
    if any(shape ~= want)
        st.refused = true;
        error('twinloop:shape', ['twinloop_si: ScanImage frames are %dx%d (lines x pixels) ' ...
              'but the daemon expects %dx%d: set imaging.height = %d and imaging.width = %d ' ...
              'in its config (or change the scan); streaming stopped'], ...
              shape(1), shape(2), want(1), want(2), shape(1), shape(2));
    end
    st = tl_credit(st);
    if st.sent - (st.acked + 1) >= st.window
        st.dropped = st.dropped + 1;  % the daemon sees a gap in this plane's numbering
        st = tl_warn_once(st, 'window', sprintf(['twinloop_si: no ack from the daemon for ' ...
             '%g s; dropping frames until it catches up (counted; gaps in its log)'], ...
             st.opts.window_wait_s));
        continue
    end
    h = tl_header(1, dtype, shape, seq, t_ns, n, plane, wire - 1, tl_sent_ns(st));
    tl_send(st, 'two_photon', h, img);
    st.sent = st.sent + 1;
end
end

function st = tl_credit(st)
% Waits (at most window_wait_s) until one more frame fits the daemon's window (section 6).
deadline = tl_now() + st.opts.window_wait_s;
st = tl_drain(st, 1);
while st.sent - (st.acked + 1) >= st.window && tl_now() < deadline
    st = tl_drain(st, 10);
end
end

function st = tl_warn_once(st, key, msg)
if ~isfield(st.warned, key)
    st.warned.(key) = true;
    warning('twinloop:frame', '%s', msg);
end
end

function yes = isprop_safe(obj, name)
yes = isobject(obj) && isprop(obj, name);
end
