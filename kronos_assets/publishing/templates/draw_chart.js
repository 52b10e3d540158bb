function drawChart(id, fig) {
  var el = document.getElementById(id), small = window.innerWidth < 600;
  var fixed = (fig.layout.meta || {}).height;  // the small calibration charts keep their own height
  var layout = Object.assign({}, fig.layout, {autosize: true, height: fixed || (small ? 340 : 420)});
  if (typeof layout.template === "string") layout.template = PLOTLY_TEMPLATES[layout.template];  // shared file
  if (small && !fixed) {  // a phone: the heading names the series; the legend and the tool bar take too much room
    layout.margin = {l: 45, r: 6, t: 10, b: 20};
    layout.showlegend = false;
    layout.title = {text: ""};
    var meta = fig.layout.meta || {};
    if (meta.phone_xrange) {
      layout.xaxis = Object.assign({}, fig.layout.xaxis, {range: meta.phone_xrange, autorange: false});
      layout.yaxis = Object.assign({}, fig.layout.yaxis, {range: meta.phone_yrange, autorange: false});
    }
  }
  Plotly.newPlot(el, fig.data, layout, {responsive: true, displaylogo: false, displayModeBar: !small});
}
