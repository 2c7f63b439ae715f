function report = fake_scanimage(recording, varargin)
% FAKE_SCANIMAGE  A stand-in for ScanImage that replays a recording through twinloop_si, the
% way ScanImage calls a user function: acqModeStart, frameAcquired per frame (the newest frame
% in hSI.hDisplay.stripeDataBuffer), acqModeDone. Used by the Rust test
% tests/tests/scanimage_octave.rs under GNU Octave; runs in MATLAB too.
%
%   recording: a folder with
%     index.bin   per frame two little-endian float64: frameNumberAcqMode, frameTimestamp (s)
%     frames.bin  per frame and channel (channel-fastest) an int16 [height, width] image,
%                 row-major, little-endian
%     shape.txt   "height width channels"
%   varargin: passed to twinloop_si on acqModeStart (ingest, publish, channels, ...).
%
% Prints one JSON line (the bridge's report, with the frameAcquired callback's median and 95th
% percentile time, ms) and returns it.
shape = dlmread(fullfile(recording, 'shape.txt'));
[height, width, channels] = deal(shape(1), shape(2), shape(3));
f = fopen(fullfile(recording, 'index.bin'), 'r', 'ieee-le');
index = fread(f, [2, Inf], 'float64');
fclose(f);
f = fopen(fullfile(recording, 'frames.bin'), 'r', 'ieee-le');

% What ScanImage hands a user function: src.hSI, and an event with its name.
hSI = struct();
hSI.hDisplay = struct('stripeDataBuffer', {cell(1, 3)}, 'stripeDataBufferPointer', 1);
src = struct('hSI', hSI);
twinloop_si(src, struct('EventName', 'acqModeStart'), varargin{:});
callback_s = zeros(1, size(index, 2));
for k = 1:size(index, 2)
    imageData = cell(1, channels);
    for c = 1:channels
        % Row-major [height, width] on disk is column-major [width, height]: ScanImage's
        % transposed layout, as it keeps imageData.
        img = fread(f, [width, height], '*int16');
        imageData{c} = {img};
    end
    stripe = struct('frameNumberAcqMode', index(1, k), 'frameTimestamp', index(2, k), ...
                    'channelNumbers', 1:channels, 'transposed', true, ...
                    'roiData', {{struct('imageData', {imageData})}});
    p = mod(k, numel(src.hSI.hDisplay.stripeDataBuffer)) + 1;  % ScanImage's display ring
    src.hSI.hDisplay.stripeDataBuffer{p} = stripe;
    src.hSI.hDisplay.stripeDataBufferPointer = p;
    started = tic();
    twinloop_si(src, struct('EventName', 'frameAcquired'));
    callback_s(k) = toc(started);  % what ScanImage would wait for, per frame
    if k == 2
        % A second event for the frame already sent: the bridge must not send it twice.
        twinloop_si(src, struct('EventName', 'frameAcquired'));
    end
end
fclose(f);
twinloop_si(src, struct('EventName', 'acqDone'));
twinloop_si(src, struct('EventName', 'acqModeDone'));
st = twinloop_si('report');
sorted_ms = sort(callback_s) * 1e3;
report = struct('sent', st.sent, 'dropped', st.dropped, 'acked', st.acked, ...
                'stale_acks', st.stale_acks, 'epoch', sprintf('%d', st.epoch), ...
                'ended_by', st.ended_by, 'final', st.final, ...
                'callback_ms_median', sorted_ms(ceil(end / 2)), ...
                'callback_ms_p95', sorted_ms(ceil(0.95 * end)));
disp(jsonencode(report));
end
