function o = tl_options(varargin)
% The user function's options (name, value pairs; see twinloop_si), with defaults, checked.
o = struct('ingest', '', 'publish', '', 'jar', '', 'channels', 1, 'planes', 1, ...
           'connect_timeout_s', 5, 'window_wait_s', 1, 'sent_ns', false, 't0_ns', 0);
if mod(numel(varargin), 2) ~= 0
    error('twinloop:options', ['twinloop_si: options come in name, value pairs ' ...
          '(got %d arguments); e.g. {''ingest'', ''tcp://host:5555'', ''publish'', ...}'], ...
          numel(varargin));
end
for k = 1:2:numel(varargin)
    name = varargin{k};
    if ~ischar(name) || ~isfield(o, name)
        error('twinloop:options', ['twinloop_si: unknown option %s; the options are ' ...
              'ingest, publish, jar, channels, planes, connect_timeout_s, window_wait_s, ' ...
              'sent_ns, t0_ns'], tl_show(name));
    end
    o.(name) = varargin{k + 1};
end
if isempty(o.ingest) || isempty(o.publish)
    error('twinloop:options', ['twinloop_si: ''ingest'' and ''publish'' are required: the ' ...
          'daemon''s source.ingest and source.publish, e.g. tcp://10.0.0.2:5555 and :5556']);
end
if ~isnumeric(o.channels) || isempty(o.channels) || any(o.channels < 1) ...
        || any(o.channels ~= round(o.channels)) || numel(o.channels) > 255
    error('twinloop:options', ['twinloop_si: ''channels'' must list ScanImage channel ' ...
          'numbers (1, 2, ...), e.g. 1 or [1 2]']);
end
if ~isscalar(o.planes) || o.planes < 1 || o.planes ~= round(o.planes) || o.planes > 255
    error('twinloop:options', ['twinloop_si: ''planes'' must be the slices per volume, ' ...
          'an integer 1..255 (imaging.planes in the daemon''s config)']);
end
end

function s = tl_show(x)
if ischar(x)
    s = ['''' x ''''];
else
    s = sprintf('(a %s, not a name)', class(x));
end
end
