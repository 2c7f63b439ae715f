function report = twinloop_si(src, evt, varargin)
% TWINLOOP_SI  ScanImage user function: streams every acquired frame to the twinloop daemon.
%
%   Register it in ScanImage (Settings > User Functions) for the events acqModeStart,
%   frameAcquired, acqModeDone and acqAbort, with the same Arguments on acqModeStart (the only
%   event that reads them), e.g.
%
%     {'ingest', 'tcp://10.0.0.2:5555', 'publish', 'tcp://10.0.0.2:5556', 'channels', 1}
%
%   acqModeStart    connects to the daemon (SUB first, waits for its heartbeat, then PUSH) and
%                   sends `hello` with a fresh epoch (docs/protocol.md section 2).
%   frameAcquired   sends the newest frame of each chosen channel as a `two_photon` message:
%                   t_ns = frameTimestamp (s since the acquisition mode began) in ns, aux = the
%                   frame number (frameNumberAcqMode), seq numbered from that frame number per
%                   plane, so frames ScanImage never handed to MATLAB reach the daemon as gaps.
%                   It keeps to the daemon's ack window (section 6), waiting at most
%                   'window_wait_s' before it drops a frame (counted, and a gap for the daemon).
%   acqModeDone,    send `end`, wait for the daemon's final heartbeat, close the sockets.
%   acqAbort
%
%   Options (name, value) on acqModeStart:
%     ingest, publish     the daemon's endpoints (source.ingest, source.publish); required
%     jar                 the JeroMQ jar, when it is not on the Java class path already (in
%                         MATLAB list it in javaclasspath.txt instead); default
%                         $TWINLOOP_JEROMQ_JAR, then /usr/share/java/jeromq.jar (Debian)
%     channels            ScanImage channel numbers to send, in wire channel order (default 1:
%                         the first; wire channel i-1 for the i-th; must be < imaging.channels)
%     planes              slices per volume (default 1): frame n is plane mod(n-1, planes)
%     connect_timeout_s   how long to wait for the daemon's first heartbeat (default 5)
%     window_wait_s       longest wait for window credit before dropping a frame (default 1)
%     sent_ns             true: stamp messages with java.lang.System.nanoTime (the host's
%                         CLOCK_MONOTONIC on Linux) so a daemon on this machine measures
%                         send-to-activity latency; false (default): 0 = unknown
%     t0_ns               added to every frame's time (default 0)
%
%   The state lives in this function's persistent variable; `r = twinloop_si('report')` returns
%   it (frames sent, dropped, acks, the daemon's final heartbeat) after the acquisition ends.
%
%   Works in MATLAB (ScanImage) and GNU Octave >= 7 (the tests run it against a stand-in hSI).
%   See docs/bridges.md for the installation, step by step.
persistent st
report = [];
if ischar(src) && strcmp(src, 'report')
    report = st;
    return
end
switch evt.EventName
    case 'acqModeStart'
        if ~isempty(st) && isfield(st, 'push')
            warning('twinloop:restart', ...
                'twinloop_si: a previous acquisition was still connected; closing it first');
            st = tl_finish(st, 'restarted');
        end
        st = tl_connect(tl_options(varargin{:}));
    case 'frameAcquired'
        if isempty(st) || ~isfield(st, 'push') || st.refused
            return
        end
        try
            st = tl_frame(st, src.hSI);
        catch err
            st.refused = true;  % one clear error, not one per frame
            rethrow(err);
        end
    case {'acqModeDone', 'acqAbort'}
        if isempty(st) || ~isfield(st, 'push')
            return
        end
        st = tl_finish(st, evt.EventName);
    otherwise
        % acqDone (one acquisition of a loop) and the rest: nothing to send.
end
end
